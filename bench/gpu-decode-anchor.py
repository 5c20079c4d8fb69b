# Decode anchors for issue 14, measured in the same call as our engine (bench/gpu-decode.sh):
# Hugging Face transformers Llama of the andromeda-3b shape (dim 2560, 32 layers, 20 heads x 128 — HF needs
# dim = heads x head_dim — one KV head, vocab 50432, SwiGLU 10240), bf16, greedy:
#   eager   the default dynamic cache (what `generate` does out of the box)
#   compile the fastest PyTorch path HF documents: a StaticCache and the decode step under
#           torch.compile(mode="reduce-overhead") (CUDA graphs), timed over the decode loop
# Batch-1 decode after 2,048 and 32,768-token prompts, and 64 sequences at once after 128 tokens.
# Decode speed excludes the prompt: eager (tokens after the first) / (time of generate(N) - time of generate(1));
# compile: (tokens after the first) / time of the decode loop.
# Usage: python3 bench/gpu-decode-anchor.py [eager|compile ...]   prints one RESULT json line per case.
import json, sys, time, torch
from transformers import LlamaConfig, LlamaForCausalLM, StaticCache

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

def timed_generate(x, new):
    torch.cuda.synchronize()
    t = time.perf_counter()
    with torch.no_grad():
        model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)
    torch.cuda.synchronize()
    return time.perf_counter() - t

CASES = ((2048, 1, 128), (32768, 1, 64), (128, 64, 128))

def eager_case(prompt, batch, new):
    """Hugging Face's default path: generate() with its dynamic cache; decode = generate(new) - generate(1)."""
    x = torch.randint(0, cfg.vocab_size, (batch, prompt), device=dev)
    timed_generate(x, 8)  # warm-up
    first = min(timed_generate(x, 1) for _ in range(2))
    full = min(timed_generate(x, new) for _ in range(2))
    return first, batch * (new - 1) / (full - first)

def compiled_case(prompt, batch, new):
    """The static-cache + torch.compile recipe of Hugging Face's docs (a preallocated StaticCache, the one-token
    decode step compiled with mode="reduce-overhead", i.e. CUDA graphs), timed over the decode loop alone."""
    cache = StaticCache(config=cfg, max_cache_len=prompt + new)
    x = torch.randint(0, cfg.vocab_size, (batch, prompt), device=dev)
    def prefill():
        cache.reset()
        with torch.no_grad():
            logits = model(x, past_key_values=cache, cache_position=torch.arange(prompt, device=dev), use_cache=True).logits
        return logits[:, -1:].argmax(-1)
    def loop(tok):
        for i in range(new - 1):
            position = torch.tensor([prompt + i], device=dev)
            with torch.no_grad():
                tok = decode_step(tok, position, cache)
            tok = tok.clone()
        return tok
    best_prefill, best_loop = float('inf'), float('inf')
    for _ in range(3):  # the first round compiles and captures
        torch.cuda.synchronize(); t = time.perf_counter()
        tok = prefill(); torch.cuda.synchronize(); t1 = time.perf_counter()
        loop(tok); torch.cuda.synchronize(); t2 = time.perf_counter()
        best_prefill, best_loop = min(best_prefill, t1 - t), min(best_loop, t2 - t1)
    return best_prefill, batch * (new - 1) / best_loop

def step(tok, position, cache):
    logits = model(tok, past_key_values=cache, cache_position=position, position_ids=position.unsqueeze(0),
                   use_cache=True).logits
    return logits[:, -1:].argmax(-1)

decode_step = step
for mode in modes:
    if mode == 'compile':
        decode_step = torch.compile(step, mode='reduce-overhead', fullgraph=True)
    for prompt, batch, new in CASES:
        try:
            first, tok_s = (compiled_case if mode == 'compile' else eager_case)(prompt, batch, new)
            emit(model='llama3b-hf', mode=mode, prompt=prompt, batch=batch, new=new,
                 prefill_ms=first * 1e3, decode_tok_s=tok_s)
        except Exception as e:  # out of memory or a compile failure is a result too
            emit(model='llama3b-hf', mode=mode, prompt=prompt, batch=batch, error=(type(e).__name__ + ': ' + str(e))[:300])
        torch.cuda.empty_cache()
