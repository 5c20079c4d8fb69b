# The x-transformers 1.20 anchors of ../shared/anchors/README.md, re-measured in the same session as
# our figures (same configs, same method: bf16 autocast, AdamW fused, clip 1.0; prefill under
# no_grad). Select cases so a run costs only the device time it needs:
#   XT_DIR=.device/xt python3 bench/gpu-anchor-xt.py train:andromeda:2048x1 prefill:andromeda:8192 prefill:orca:8192
# Prints one RESULT JSON line per case (errors, e.g. out of memory, included).
import json, os, sys, time
sys.path.insert(0, os.environ.get('XT_DIR', '.device/xt'))
import torch
from x_transformers import TransformerWrapper, Decoder

CONFIGS = {
    'orca': dict(num_tokens=20000, dim=512, depth=6, heads=8, alibi_pos_bias=True, alibi_num_heads=4, rotary_xpos=True,
                 attn_flash=True, deepnorm=True, shift_tokens=1, attn_one_kv_head=True),
    'andromeda': dict(num_tokens=50432, dim=2560, depth=32, attn_dim_head=128, heads=24, alibi_pos_bias=True,
                      alibi_num_heads=12, rotary_xpos=True, attn_flash=True, deepnorm=True, shift_tokens=1,
                      attn_one_kv_head=True, attn_qk_norm=True, attn_qk_norm_dim_scale=True),
}

def emit(**kw):
    print('RESULT ' + json.dumps(kw), flush=True)

def build(name):
    c = dict(CONFIGS[name]); tokens = c.pop('num_tokens')
    torch.manual_seed(0)
    return TransformerWrapper(num_tokens=tokens, max_seq_len=131072, use_abs_pos_emb=False, attn_layers=Decoder(**c)).cuda()

def timeit(fn, reps=3, warm=1):
    for _ in range(warm): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(reps): fn()
    torch.cuda.synchronize(); return (time.perf_counter() - t) / reps

def prefill(name, n):
    m = build(name).eval()
    x = torch.randint(0, CONFIGS[name]['num_tokens'], (1, n), device='cuda')
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.bfloat16):
        dt = timeit(lambda: m(x))
    emit(bench='xt-anchor', model=name, kind='prefill', seq=n, ms=dt * 1e3, tok_s=n / dt, peak_gib=torch.cuda.max_memory_allocated() / 2**30)

def train(name, n, b):
    m = build(name).train()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, CONFIGS[name]['num_tokens'], (b, n + 1), device='cuda')
    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            logits = m(x[:, :-1])
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
        loss.backward(); torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0); opt.step(); opt.zero_grad(set_to_none=True)
    torch.cuda.reset_peak_memory_stats()
    dt = timeit(step)
    c = CONFIGS[name]; params = sum(p.numel() for p in m.parameters())
    flops = 6 * params * b * n + 6 * c['depth'] * b * n * n * c['heads'] * c.get('attn_dim_head', 64)
    emit(bench='xt-anchor', model=name, kind='train', seq=n, batch=b, ms=dt * 1e3, tok_s=b * n / dt, tflops=flops / dt / 1e12,
         peak_gib=torch.cuda.max_memory_allocated() / 2**30)

for case in sys.argv[1:]:
    kind, name, size = case.split(':')
    try:
        if kind == 'prefill': prefill(name, int(size))
        else:
            n, b = size.split('x'); train(name, int(n), int(b))
    except Exception as e:  # out of memory is a result, not a failure
        emit(bench='xt-anchor', model=name, kind=kind, size=size, error=str(e)[:200])
    torch.cuda.empty_cache()
