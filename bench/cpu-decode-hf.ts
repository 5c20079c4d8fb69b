// Our side of bench/cpu-decode-vs-torch.sh: greedy decoding on the CPU engine of a Hugging Face Llama folder
// (written by bench/cpu-decode-torch.py), loaded and driven as `andromeda generate` does: loadModelForInference,
// then an InferenceEngine. The prompts are the Python side's: PROMPT_TOKENS ids per row,
// id(row, i) = (1 + 97 i + 1009 row) mod vocabulary, end-of-document ignored.
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-decode-hf.js tokens DIR STEPS BATCH   each row's greedy ids
//   ANDROMEDA_THREADS=2 node dist/bench/cpu-decode-hf.js bench DIR [BATCH ...]    one RESULT line per batch size
// Decode tokens/s counts the tokens after each row's first over the time from the first token to the last; all
// rows are prefilled in one step (the token budget holds every prompt), so their first tokens arrive together.
import { loadModelForInference } from '../src/inference/load.js';
import { InferenceEngine } from '../src/inference/engine.js';
import type { LanguageModel } from '../src/train/model.js';
import type { Tokenizer } from '../src/data/tokenizer/tokenizer.js';

const PROMPT_TOKENS = 128;
const NEW = 129; // 128 decoded tokens after the prefill's first, as the Python side
const RUNS = 3;
const BLOCK_SIZE = 32;

const [command, dir, ...rest] = process.argv.slice(2);
if ((command !== 'tokens' && command !== 'bench') || !dir) {
  console.error('usage: cpu-decode-hf.js tokens DIR STEPS BATCH | bench DIR [BATCH ...]');
  process.exit(2);
}

function prompts(batch: number, vocab: number): Int32Array[] {
  return Array.from({ length: batch }, (_, row) =>
    Int32Array.from({ length: PROMPT_TOKENS }, (_, i) => (1 + 97 * i + 1009 * row) % vocab),
  );
}

function engineFor(model: LanguageModel, tokenizer: Tokenizer, batch: number, steps: number): InferenceEngine {
  const positions = PROMPT_TOKENS + steps + 1;
  return new InferenceEngine(model, tokenizer, {
    blockSize: BLOCK_SIZE,
    numBlocks: batch * Math.ceil(positions / BLOCK_SIZE),
    maxBatch: batch,
    tokenBudget: Math.max(512, batch * PROMPT_TOKENS),
  });
}

/** Runs `rows` at once; returns each row's token ids and every token's arrival time. */
async function decode(engine: InferenceEngine, rows: Int32Array[], steps: number) {
  const arrivals: number[] = [];
  const firsts: number[] = [];
  const ids = await Promise.all(
    rows.map(async (prompt) => {
      const out: number[] = [];
      const stream = engine.submit(prompt, { temperature: 0, maxTokens: steps, ignoreEos: true, startWithEos: false });
      for await (const event of stream) {
        const now = performance.now();
        if (out.length === 0) firsts.push(now);
        else arrivals.push(now);
        out.push(event.tokenId);
      }
      const result = await stream.result;
      if (result.error) throw result.error;
      return out;
    }),
  );
  return { ids, firsts, arrivals };
}

const loaded = await loadModelForInference(dir, 'cpu');
const vocab = loaded.model.vocabSize;
try {
  if (command === 'tokens') {
    const [steps, batch] = rest.map(Number);
    const engine = engineFor(loaded.model, loaded.tokenizer, batch!, steps!);
    const { ids } = await decode(engine, prompts(batch!, vocab), steps!);
    ids.forEach((row, i) => console.log(`TOKENS ${i} ${JSON.stringify(row)}`));
    await engine.close();
  } else {
    const batches = rest.length ? rest.map(Number) : [1, 8];
    for (const batch of batches) {
      const engine = engineFor(loaded.model, loaded.tokenizer, batch, NEW);
      const rows = prompts(batch, vocab);
      await decode(engine, rows, 8); // warm-up
      const rates: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const { firsts, arrivals } = await decode(engine, rows, NEW);
        const start = Math.max(...firsts);
        rates.push(arrivals.length / ((Math.max(...arrivals) - start) / 1000));
      }
      console.log(
        `RESULT ${JSON.stringify({
          bench: 'andromeda-cpu-decode-hf',
          batch,
          prompt: PROMPT_TOKENS,
          new: NEW,
          threads: Number(process.env.ANDROMEDA_THREADS ?? 0) || 'default',
          tok_s: Math.round(Math.max(...rates) * 10) / 10,
          runs: rates.map((r) => Math.round(r * 10) / 10),
        })}`,
      );
      await engine.close();
    }
  }
} finally {
  loaded.model.dispose();
}
