/**
 * The peak memory of serving a batch through the InferenceEngine (src/inference/engine.ts), as the allocator
 * counts it: the weights; the paged KV cache, allocated whole when the engine starts (src/model/paged-kv-cache.ts:
 * per layer keys and values [blocks + 1, blockSize, kvHeads, headDim] and, with token shift, two tails
 * [blocks + 1, ring, dim]; the extra block is the CUDA graphs' scratch block); and the widest step — a prefill
 * chunk of up to tokenBudget rows through one block, whose tensors live until the block returns (no autograd:
 * each block's intermediates are freed as it ends, src/model/block-runner.ts), then the logits of the rows that
 * sample.
 */
import type { AndromedaConfig } from '../model/config.js';
import { parameterShapes } from '../model/parameter-shapes.js';
import type { EngineKind } from './allocator.js';
import { blockTensors } from './activations.js';
import { CUBLASLT_WORKSPACE_BYTES, line, parameterGroups, rowGroups, type MemoryLine } from './breakdown.js';
import { DTYPE_BYTES } from '../tensor/dtype.js';
import type { InferenceWorkload } from './workload.js';

/**
 * KV-cache blocks the workload's requests hold at their longest: each request's prompt and output rounded up to
 * whole blocks (a request's last block is its own, never shared with another's).
 */
export function kvCacheBlocks(
  w: Pick<InferenceWorkload, 'batch' | 'promptTokens' | 'outputTokens' | 'blockSize'>,
): number {
  return w.batch * Math.ceil((w.promptTokens + w.outputTokens) / w.blockSize);
}

export interface InferenceMemory {
  lines: MemoryLine[];
  peakBytes: number;
}

export function planInferencePeak(c: AndromedaConfig, w: InferenceWorkload, engine: EngineKind): InferenceMemory {
  const bytes = DTYPE_BYTES[w.kvDtype];
  const poolBlocks = kvCacheBlocks(w) + 1;
  const kvElements = poolBlocks * w.blockSize * c.kvHeads * c.headDim;
  const tailElements = c.shiftTokens > 0 ? poolBlocks * c.shiftTokens * c.dim : 0;
  const chunkRows = Math.min(w.tokenBudget, w.batch * w.promptTokens);
  const stepTensors = [
    { perRow: c.dim, what: 'block input' },
    ...blockTensors(c, { paged: true }),
    // The step's int32 indices per row (token ids, cache slots).
    { perRow: 1, float32: true, what: 'token ids' },
    { perRow: 1, float32: true, what: 'cache slots' },
  ];
  const lines: MemoryLine[] = [
    line(engine, `weights (${w.kvDtype})`, parameterGroups(parameterShapes(c), bytes), '--model, --dtype'),
    line(
      engine,
      `KV cache (${poolBlocks} blocks of ${w.blockSize} positions, ${w.kvDtype})`,
      [
        { count: 2 * c.depth, bytes: kvElements * bytes },
        ...(tailElements > 0 ? [{ count: 2 * c.depth, bytes: tailElements * bytes }] : []),
      ],
      '--batch, --prompt, --output, --dtype',
    ),
    line(
      engine,
      `prefill working set (${chunkRows} rows through one block, then logits)`,
      [
        ...rowGroups(stepTensors, chunkRows, w.kvDtype),
        ...rowGroups([{ perRow: c.vocabSize, float32: true, what: 'logits' }], w.batch, w.kvDtype),
      ],
      '--token-budget',
    ),
  ];
  if (engine === 'cuda')
    lines.push(line(engine, 'cuBLASLt workspace', [{ count: 1, bytes: CUBLASLT_WORKSPACE_BYTES }], ''));
  return { lines, peakBytes: lines.reduce((s, l) => s + l.bytes, 0) };
}
