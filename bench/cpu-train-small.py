# The PyTorch side of bench/cpu-train-small.ts: shared/anchors/anchor_decode_cpu.py part 3 (x-transformers
# 1.20 small byte-level config, AdamW, batch 8 x 256, 2 threads), alone so it runs beside ours on one machine:
#   XT_DIR=.device/xt taskset -c 0,1 python3 bench/cpu-train-small.py
import os, sys, time, json, torch
sys.path.insert(0, os.environ.get('XT_DIR', '.device/xt'))
from x_transformers import TransformerWrapper, Decoder
torch.set_num_threads(2)
SMALL = dict(dim=256, depth=4, heads=4, alibi_pos_bias=True, alibi_num_heads=2, rotary_xpos=True, shift_tokens=1, attn_one_kv_head=True)
cm = TransformerWrapper(num_tokens=256, max_seq_len=1024, use_abs_pos_emb=False, attn_layers=Decoder(**SMALL))
opt = torch.optim.AdamW(cm.parameters(), lr=3e-4)
x = torch.randint(0, 256, (8, 257))
def step():
    logits = cm(x[:, :-1]); loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), x[:, 1:].reshape(-1))
    loss.backward(); opt.step(); opt.zero_grad()
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 5
step(); t = time.perf_counter()
for _ in range(steps): step()
dt = (time.perf_counter() - t) / steps
print("RESULT " + json.dumps(dict(bench='cpu-train-small-pytorch', params=sum(p.numel() for p in cm.parameters()), batch=8, seq=256,
      steps=steps, tok_s=round(8 * 256 / dt), ms_per_step=round(dt * 1e3, 1), torch=torch.__version__,
      cpu=open('/proc/cpuinfo').read().split('model name')[1].split('\n')[0].strip(': '))), flush=True)
