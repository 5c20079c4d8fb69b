# PyTorch's cuBLAS on the same GPU, in the same run: the ceiling bench/gpu-matmul.ts is compared with.
#   python3 bench/gpu-torch-ceiling.py
import torch

torch.backends.cuda.matmul.allow_tf32 = False
print(f"# torch {torch.__version__}, {torch.cuda.get_device_name()}")
print("| dtype | shape | ms | TFLOP/s |\n|---|---|---|---|")
for dtype, sizes in ((torch.bfloat16, (1024, 2048, 4096, 8192, 16384)), (torch.float32, (1024, 4096, 8192))):
    for n in sizes:
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        for _ in range(3):
            a @ b
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        reps = max(3, min(200, int(50 / max(2 * n**3 / 700e12 * 1e3, 1e-3))))
        samples = []
        for _ in range(7):
            start.record()
            for _ in range(reps):
                a @ b
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / reps)
        ms = sorted(samples)[3]
        print(f"| {str(dtype).replace('torch.', '')} | {n}³ | {ms:.3f} | {2 * n**3 / (ms * 1e-3) / 1e12:.1f} |")
