# The PyTorch side of bench/cpu-decode-vs-torch.sh: greedy decoding on the CPU of a SmolLM2-135M-shaped Llama
# (hidden 576, 30 layers, 9 heads, 3 KV heads x 64, SwiGLU 1536, vocabulary 49152, tied embeddings, rope theta
# 100000) with seeded random float32 weights, through Hugging Face transformers. The model is written once as a
# Hugging Face folder, which our engine then loads too, so both sides decode the same weights.
#   python3 bench/cpu-decode-torch.py save DIR                 write config.json + model.safetensors (seed 0)
#   python3 bench/cpu-decode-torch.py tokens DIR STEPS BATCH   print each row's greedy ids after its prompt
#   python3 bench/cpu-decode-torch.py bench DIR MODE [BATCH ...]   MODE eager | compile; one RESULT line per batch
# Prompts: PROMPT_TOKENS ids per row, id(row, i) = (1 + 97 i + 1009 row) mod vocabulary (bench/cpu-decode-hf.ts
# builds the same). Decode tokens/s counts the tokens after the first over the time they took:
#   eager   generate() with its default dynamic cache: batch (NEW - 1) / (time of generate(NEW) - time of generate(1))
#   compile a StaticCache and the one-token step under torch.compile, timed over the decode loop alone
import json, os, sys, time
import torch
from transformers import LlamaConfig, LlamaForCausalLM, StaticCache

PROMPT_TOKENS, NEW = 128, 129  # 128 decoded tokens after the prefill's first
RUNS = 3


def emit(**kw):
    print('RESULT ' + json.dumps(kw), flush=True)


def config():
    return LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, tie_word_embeddings=True,
                       rope_theta=100000.0, rms_norm_eps=1e-5, max_position_embeddings=8192,
                       bos_token_id=1, eos_token_id=2)


def prompts(batch, vocab):
    return torch.tensor([[(1 + 97 * i + 1009 * row) % vocab for i in range(PROMPT_TOKENS)] for row in range(batch)])


def save_tokenizer(path, vocab_size):
    """A byte-level BPE tokenizer.json whose vocabulary is the model's (<|endoftext|> as SmolLM2's id 0, 256 byte
    tokens, the rest placeholders without merges): our engine samples only ids its tokenizer knows, so the two sides choose from the same
    49,152 ids. The benchmark feeds token ids; no text is tokenized."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders
    byte_symbols = list(pre_tokenizers.ByteLevel.alphabet())
    byte_symbols.sort()
    vocab = {'<|endoftext|>': 0}
    vocab.update({symbol: 1 + i for i, symbol in enumerate(byte_symbols)})
    vocab.update({f'<placeholder_{i}>': i for i in range(len(vocab), vocab_size)})
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(['<|endoftext|>'])
    tokenizer.save(os.path.join(path, 'tokenizer.json'))


def load(path):
    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    model.generation_config.eos_token_id = None  # decode every token asked for, as ours does with ignoreEos
    model.generation_config.pad_token_id = 0
    return model


def greedy(model, x, new):
    with torch.inference_mode():
        return model.generate(x, max_new_tokens=new, min_new_tokens=new, do_sample=False)


def timed_generate(model, x, new):
    t = time.perf_counter()
    greedy(model, x, new)
    return time.perf_counter() - t


def eager_case(model, batch):
    x = prompts(batch, model.config.vocab_size)
    timed_generate(model, x, 8)  # warm-up
    first = min(timed_generate(model, x, 1) for _ in range(RUNS))
    fulls = [timed_generate(model, x, NEW) for _ in range(RUNS)]
    rates = [batch * (NEW - 1) / (full - first) for full in fulls]
    return first, rates


def compiled_case(model, batch, step):
    """Hugging Face's static-cache recipe: a preallocated StaticCache and the one-token decode step compiled."""
    cfg = model.config
    cache = StaticCache(config=cfg, max_cache_len=PROMPT_TOKENS + NEW)
    x = prompts(batch, cfg.vocab_size)

    def run():
        with torch.inference_mode():  # the cache's tensors are made in inference mode, so reset there too
            cache.reset()
            logits = model(x, past_key_values=cache, cache_position=torch.arange(PROMPT_TOKENS), use_cache=True).logits
            tok = logits[:, -1:].argmax(-1)
            t = time.perf_counter()
            for i in range(NEW - 1):
                position = torch.tensor([PROMPT_TOKENS + i])
                tok = step(model, tok, position, cache).clone()
            return time.perf_counter() - t

    times = []
    for round in range(RUNS + 1):  # the first round compiles
        t = time.perf_counter()
        loop = run()
        if round == 0:
            emit(mode='compile', batch=batch, first_round_s=time.perf_counter() - t)
        else:
            times.append(loop)
    return None, [batch * (NEW - 1) / t for t in times]


def step(model, tok, position, cache):
    logits = model(tok, past_key_values=cache, cache_position=position, position_ids=position.unsqueeze(0),
                   use_cache=True).logits
    return logits[:, -1:].argmax(-1)


def main():
    command, path = sys.argv[1], sys.argv[2]
    torch.set_num_threads(int(os.environ.get('TORCH_THREADS', '2')))
    if command == 'save':
        torch.manual_seed(0)
        LlamaForCausalLM(config()).to(torch.float32).save_pretrained(path)
        save_tokenizer(path, config().vocab_size)
        return
    model = load(path)
    if command == 'tokens':
        steps, batch = int(sys.argv[3]), int(sys.argv[4])
        out = greedy(model, prompts(batch, model.config.vocab_size), steps)
        for row in range(batch):
            print(f'TOKENS {row} ' + json.dumps(out[row, PROMPT_TOKENS:].tolist()), flush=True)
        return
    if command != 'bench':
        sys.exit(f'unknown command {command!r}: save, tokens or bench')
    mode = sys.argv[3]
    batches = [int(b) for b in sys.argv[4:]] or [1, 8]
    emit(bench='torch-cpu-decode', params=sum(p.numel() for p in model.parameters()), torch=torch.__version__,
         transformers=__import__('transformers').__version__, threads=torch.get_num_threads())
    compiled_step = torch.compile(step, fullgraph=True) if mode == 'compile' else None
    for batch in batches:
        try:
            first, rates = eager_case(model, batch) if mode == 'eager' else compiled_case(model, batch, compiled_step)
            emit(bench='torch-cpu-decode', mode=mode, batch=batch, prompt=PROMPT_TOKENS, new=NEW,
                 prefill_ms=None if first is None else round(first * 1e3, 1),
                 tok_s=round(max(rates), 1), runs=[round(r, 1) for r in rates])
        except Exception as e:  # a compile failure is a result too
            emit(bench='torch-cpu-decode', mode=mode, batch=batch, error=(type(e).__name__ + ': ' + str(e))[:400])


main()
