"""Can AdamW over andromeda-3b hide behind the next step's forward if the two split the SMs? (PyTorch + Triton)

optimizer-overlap-probe.py found two streams alone hide ~3 ms of 29: the products and the update take turns on the
SMs, and the forward waits on each layer's update. Here the update is a persistent Triton kernel on `sms` blocks
(one block an SM: 28 bytes a parameter, float32 master/moments, bf16 gradient and weight copy, as ours) and the
products are told by cuBLASLt's SM-count target (torch's sm carve-out) to leave those SMs free.
Prints RESULT lines: the update's time and bandwidth by SM count alone, then forward + update overlapped.
"""
import torch
import triton
import triton.language as tl

dev = "cuda"
tokens, dim, qdim, kvdim, ff, depth = 2048, 2560, 3072, 256, 10240, 32
shapes = [(qdim, dim), (kvdim, dim), (dim, qdim), (ff, dim), (dim, ff)]
per_layer = sum(a * b for a, b in shapes)
SMS = torch.cuda.get_device_properties(0).multi_processor_count


@triton.jit
def adamw(p, g, m, v, w, n, lr, b1, b2, eps, decay, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    step = tl.num_programs(0) * BLOCK
    for start in range(pid * BLOCK, n, step):
        i = start + tl.arange(0, BLOCK)
        mask = i < n
        gi = tl.load(g + i, mask=mask).to(tl.float32)
        mi = b1 * tl.load(m + i, mask=mask) + (1 - b1) * gi
        vi = b2 * tl.load(v + i, mask=mask) + (1 - b2) * gi * gi
        pi = tl.load(p + i, mask=mask) * decay - lr * mi / (tl.sqrt(vi) + eps)
        tl.store(m + i, mi, mask=mask)
        tl.store(v + i, vi, mask=mask)
        tl.store(p + i, pi, mask=mask)
        tl.store(w + i, pi.to(tl.bfloat16), mask=mask)


layers = []
for _ in range(depth):
    p = torch.randn(per_layer, device=dev) * 0.02
    g = (torch.randn(per_layer, device=dev) * 1e-3).to(torch.bfloat16)
    m = torch.zeros(per_layer, device=dev)
    v = torch.zeros(per_layer, device=dev)
    w = p.to(torch.bfloat16)
    views, o = [], 0
    for a, b in shapes:
        views.append(w[o:o + a * b].view(a, b))
        o += a * b
    layers.append((p, g, m, v, w, views))
x0 = torch.randn(tokens, dim, device=dev, dtype=torch.bfloat16)


def update(layer, sms, warps):
    p, g, m, v, w, _ = layer
    adamw[(sms,)](p, g, m, v, w, per_layer, 1e-4, 0.9, 0.95, 1e-8, 1 - 1e-5, BLOCK=4096, num_warps=warps)


def forward_layer(x, views):
    wq, wkv, wo, w1, w2 = views
    q = x @ wq.t()
    kv = x @ wkv.t()
    x = x + (q @ wo.t()) * 0.01 + kv[:, :1] * 0
    h = torch.relu(x @ w1.t())
    return x + (h @ w2.t()) * 0.01


def timed(fn, reps=5):
    times = []
    for _ in range(reps + 2):
        torch.cuda.synchronize()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    times = sorted(times[2:])
    return times[len(times) // 2]


def forward_only():
    x = x0
    for layer in layers:
        x = forward_layer(x, layer[5])


carve = getattr(torch._C, "_set_sm_carveout_experimental", None)
torch.backends.cuda.preferred_blas_library("cublaslt")  # the carve-out reaches cuBLASLt only
print("RESULT device", torch.cuda.get_device_name(), "sms", SMS, "carveout api", carve is not None)
f = timed(forward_only)
print(f"RESULT forward alone {f:.2f} ms")
bytes_ = 28 * per_layer * depth
for warps in (8, 32):
    for sms in (SMS * 2, SMS, 66, 48, 32):
        t = timed(lambda: [update(l, sms, warps) for l in layers])
        print(f"RESULT update alone blocks {sms} warps {warps}: {t:.2f} ms {bytes_ / (t * 1e-3) / 1e9:.0f} GB/s")
full = timed(lambda: [update(l, SMS * 2, 8) for l in layers])

for sms, warps in [(132, 32), (66, 32), (48, 32), (32, 32)]:
    for use_carve in (False, True):
        if carve is None and use_carve:
            continue
        if carve is not None:
            carve(sms if use_carve else 0)
        side = torch.cuda.Stream()
        main = torch.cuda.Stream()

        def run():
            start = torch.cuda.Event()
            start.record()
            side.wait_event(start)
            main.wait_event(start)
            ready = []
            with torch.cuda.stream(side):
                for l in layers:
                    update(l, sms, warps)
                    e = torch.cuda.Event()
                    e.record(side)
                    ready.append(e)
            x = x0
            with torch.cuda.stream(main):
                for l, e in zip(layers, ready):
                    main.wait_event(e)
                    x = forward_layer(x, l[5])
            cur = torch.cuda.current_stream()
            cur.wait_stream(side)
            cur.wait_stream(main)

        t = timed(run)
        fc = timed(forward_only)
        print(f"RESULT overlap update blocks {sms} warps {warps} carveout {use_carve}: {t:.2f} ms against serial "
              f"{f + full:.2f} (forward alone {fc:.2f} with this carve-out): hides {f + full - t:.2f} ms")
if carve is not None:
    carve(0)
