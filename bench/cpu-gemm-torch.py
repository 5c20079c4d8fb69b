# PyTorch float32 matmul GFLOP/s for the shapes of bench/cpu-gemm-native.cc:
#   python3 bench/cpu-gemm-torch.py 1 2 16        (thread counts)
import sys, time
import torch

shapes = [
    ("square 512", 512, 512, 512, False, False, 1), ("square 1024", 1024, 1024, 1024, False, False, 1),
    ("square 2048", 2048, 2048, 2048, False, False, 1), ("x.Wt 2048x256x256", 2048, 256, 256, False, True, 1),
    ("x.Wt 2048x1024x256", 2048, 1024, 256, False, True, 1), ("h.Wt 2048x256x1024", 2048, 256, 1024, False, True, 1),
    ("dY.W 2048x256x1024", 2048, 256, 1024, False, False, 1), ("dYt.X 1024x256x2048", 1024, 256, 2048, True, False, 1),
    ("dYt.X 256x256x2048", 256, 256, 2048, True, False, 1), ("QKt 32x256x256x64", 256, 256, 64, False, True, 32),
    ("PV 32x256x64x256", 256, 64, 256, False, False, 32),
]
print(f"# torch {torch.__version__}, {torch.backends.mkldnn.is_available() and 'oneDNN' or ''} {torch.__config__.show().splitlines()[-1][:120]}")
for t in map(int, sys.argv[1:]):
    torch.set_num_threads(t)
    for name, m, n, k, ta, tb, b in shapes:
        A = torch.rand(b, k, m).transpose(1, 2) if ta else torch.rand(b, m, k)
        B = torch.rand(b, n, k).transpose(1, 2) if tb else torch.rand(b, k, n)
        if b == 1: A, B = A[0], B[0]
        C = torch.matmul(A, B)
        best, t0 = 1e9, time.perf_counter()
        for rep in range(200):
            a0 = time.perf_counter(); torch.matmul(A, B, out=C); a1 = time.perf_counter()
            best = min(best, a1 - a0)
            if rep >= 3 and a1 - t0 > 0.5: break
        print(f"{t}\t{name}\t{2 * m * n * k * b / best / 1e9:.1f}")
