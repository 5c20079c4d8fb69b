# Decode anchors for issue 14, measured in the same call as our engine (bench/gpu-decode.sh):
# Hugging Face transformers Llama of the andromeda-3b shape (dim 2560, 32 layers, 20 heads x 128 — HF needs
# dim = heads x head_dim — one KV head, vocab 50432, SwiGLU 10240), bf16, greedy:
#   eager   the default dynamic cache (what `generate` does out of the box)
#   compile the fastest PyTorch path HF documents: static cache + torch.compile(mode="reduce-overhead")
# Batch-1 decode after 2,048 and 32,768-token prompts, and 64 sequences at once after 128 tokens.
# Decode speed excludes the prompt: (tokens after the first) / (time of generate(N) - time of generate(1)).
# Usage: python3 bench/gpu-decode-anchor.py [eager|compile ...]   prints one RESULT json line per case.
import json, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM

def emit(**kw):
    print('RESULT ' + json.dumps(kw), flush=True)

modes = sys.argv[1:] or ['eager', 'compile']
dev = 'cuda'
cfg = LlamaConfig(vocab_size=50432, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
                  num_attention_heads=20, num_key_value_heads=1, head_dim=128, max_position_embeddings=40960)
torch.manual_seed(0)
model = LlamaForCausalLM(cfg).to(dev, torch.bfloat16).eval()
emit(model='llama3b-hf', params=sum(p.numel() for p in model.parameters()),
     torch=torch.__version__, transformers=__import__('transformers').__version__,
     device=torch.cuda.get_device_name())

def timed_generate(x, new, **kw):
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False, **kw)
    torch.cuda.synchronize()
    return time.perf_counter() - t

CASES = ((2048, 1, 128), (32768, 1, 64), (128, 64, 128))
for mode in modes:
    kw = {}
    if mode == 'compile':
        model.generation_config.cache_implementation = 'static'
        model.forward = torch.compile(model.forward, mode='reduce-overhead', fullgraph=True)
    for prompt, batch, new in CASES:
        try:
            x = torch.randint(0, cfg.vocab_size, (batch, prompt), device=dev)
            timed_generate(x, 8, **kw)  # warm-up (and compilation)
            timed_generate(x, 8, **kw)
            first = min(timed_generate(x, 1, **kw) for _ in range(2))
            full = min(timed_generate(x, new, **kw) for _ in range(2))
            emit(model='llama3b-hf', mode=mode, prompt=prompt, batch=batch, new=new,
                 prefill_ms=first * 1e3, decode_tok_s=batch * (new - 1) / (full - first))
        except Exception as e:  # out of memory or a compile failure is a result too
            emit(model='llama3b-hf', mode=mode, prompt=prompt, batch=batch, error=str(e)[:300])
        torch.cuda.empty_cache()
