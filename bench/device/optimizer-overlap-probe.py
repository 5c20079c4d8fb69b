"""Does AdamW over andromeda-3b hide behind the next step's forward on a second stream? (PyTorch probe)

The proxy: the 3B forward's products (32 layers of [2048, 2560] activations through q 3072, kv 256, out 2560 and a
4x feed-forward, bf16) and, per layer, torch's fused AdamW over that layer's float32 masters followed by the bf16
copy the forward reads. Timed three ways with CUDA events: forward alone, optimizer alone, and both with the forward
on one stream waiting per layer on the event that layer's update recorded on another (stream priorities varied).
Prints RESULT lines; run on the GPU machine: python3 bench/device/optimizer-overlap-probe.py
"""
import torch

torch.manual_seed(0)
dev = "cuda"
tokens, dim, qdim, kvdim, ff, depth = 2048, 2560, 3072, 256, 10240, 32
shapes = [(qdim, dim), (kvdim, dim), (dim, qdim), (ff, dim), (dim, ff)]

layers = []
for _ in range(depth):
    masters = [torch.randn(s, device=dev) * 0.02 for s in shapes]
    for p in masters:
        p.grad = torch.randn_like(p) * 1e-3
    opt = torch.optim.AdamW(masters, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    opt.step()  # moments allocated
    weights = [p.to(torch.bfloat16) for p in masters]
    layers.append((masters, opt, weights))
x0 = torch.randn(tokens, dim, device=dev, dtype=torch.bfloat16)


def forward_layer(x, weights):
    wq, wkv, wo, w1, w2 = weights
    q = x @ wq.t()
    kv = x @ wkv.t()
    x = x + (q @ wo.t()) * 0.01 + kv.sum() * 0
    h = torch.relu(x @ w1.t())
    return x + (h @ w2.t()) * 0.01


def update_layer(layer):
    masters, opt, weights = layer
    opt.step()
    torch._foreach_copy_(weights, masters)


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
    for _, _, w in layers:
        x = forward_layer(x, w)


def optimizer_only():
    for layer in layers:
        update_layer(layer)


def serial():
    optimizer_only()
    forward_only()


def overlapped(opt_priority, fwd_priority):
    side = torch.cuda.Stream(priority=opt_priority)
    main = torch.cuda.Stream(priority=fwd_priority)

    def run():
        start = torch.cuda.Event()
        start.record()
        side.wait_event(start)
        main.wait_event(start)
        ready = []
        with torch.cuda.stream(side):
            for layer in layers:
                update_layer(layer)
                e = torch.cuda.Event()
                e.record(side)
                ready.append(e)
        x = x0
        with torch.cuda.stream(main):
            for (_, _, w), e in zip(layers, ready):
                main.wait_event(e)
                x = forward_layer(x, w)
        done = torch.cuda.current_stream()
        done.wait_stream(side)
        done.wait_stream(main)

    return run


print("RESULT device", torch.cuda.get_device_name(), "sms", torch.cuda.get_device_properties(0).multi_processor_count)
f = timed(forward_only)
o = timed(optimizer_only)
s = timed(serial)
print(f"RESULT forward {f:.2f} ms  optimizer {o:.2f} ms  serial {s:.2f} ms")
lo, hi = torch.cuda.Stream.priority_range()
for name, op, fp in [("equal", 0, 0), ("optimizer high", hi, lo), ("forward high", lo, hi)]:
    t = timed(overlapped(op, fp))
    print(f"RESULT overlapped ({name}) {t:.2f} ms: hides {s - t:.2f} ms of the optimizer's {o:.2f}")
