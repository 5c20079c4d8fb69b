# PyTorch SDPA on the same GPU in the same run, for bench/gpu-attention.ts: causal attention forward and
# backward on the cuDNN backend (and FlashAttention-2 for reference), bf16, [batch, heads, n, dim].
#   python3 bench/gpu-attention-sdpa.py n heads dim [n heads dim ...]
# Prints one JSON object per line: {"backend", "n", "heads", "dim", "fwd_ms", "bwd_ms"}.
import json
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def median_ms(fn, reps=5):
    fn()
    fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(reps):
        start.record()
        fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return sorted(samples)[len(samples) // 2]


def measure(backend, n, heads, dim):
    q, k, v = (torch.randn(1, heads, n, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    grad = torch.randn(1, heads, n, dim, device="cuda", dtype=torch.bfloat16)
    with sdpa_kernel(backend):
        with torch.no_grad():
            fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        bwd = median_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True))
    return fwd, bwd


args = [int(a) for a in sys.argv[1:]] or [32768, 24, 128]
for i in range(0, len(args), 3):
    n, heads, dim = args[i:i + 3]
    for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash2", SDPBackend.FLASH_ATTENTION)):
        try:
            fwd, bwd = measure(backend, n, heads, dim)
            print(json.dumps({"backend": name, "n": n, "heads": heads, "dim": dim, "fwd_ms": fwd, "bwd_ms": bwd}), flush=True)
        except Exception as e:  # a backend that refuses the shape is reported, not fatal
            print(json.dumps({"backend": name, "n": n, "heads": heads, "dim": dim, "error": str(e)[:200]}), flush=True)
        torch.cuda.empty_cache()
print(json.dumps({"torch": torch.__version__, "device": torch.cuda.get_device_name()}), flush=True)
