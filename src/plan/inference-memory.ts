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
import { allocatedBytes, type EngineKind } from './allocator.js';
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

/**
 * The CUDA paged attention's split-KV scratch for one launch (native/cuda/paged/attention.cu, plan_launch): about
 * two CTAs per multiprocessor over (sequences × KV heads × row blocks × splits), each split ≥ 64 keys, the float32
 * partial rows capped at 256 MiB; returns the bytes of its two scratch buffers (partial rows and their statistics).
 */
export function pagedAttentionScratch(
  c: AndromedaConfig,
  o: { sequences: number; queries: number; maxQueryLen: number; maxContext: number; sms: number },
): { partialRows: number; statistics: number } {
  const group = c.heads / c.kvHeads;
  const rowBlocks = Math.min(Math.max(Math.ceil((group * o.maxQueryLen) / 32), 1), 64);
  const units = o.sequences * c.kvHeads * rowBlocks;
  const most = Math.max(1, Math.ceil(o.maxContext / 64));
  let splits = Math.min(Math.max(Math.ceil((2 * o.sms) / units), 1), most);
  const bytesPerSplit = o.queries * c.heads * (c.headDim + 2) * 4;
  splits = Math.max(1, Math.min(splits, Math.floor((256 * 2 ** 20) / bytesPerSplit)));
  const keys = Math.max(o.maxContext, 1);
  const chunk = Math.ceil(Math.ceil(keys / splits) / 32) * 32;
  splits = Math.ceil(keys / chunk);
  if (splits <= 1) return { partialRows: 16, statistics: 16 };
  return {
    partialRows: o.queries * c.heads * splits * c.headDim * 4,
    statistics: o.queries * c.heads * splits * 8,
  };
}

/** Batch buckets the decode graphs are captured for: 1, 2, 4 … up to the largest batch, which is the last. */
function graphBuckets(maxBatch: number): number[] {
  const buckets: number[] = [];
  for (let b = 1; b < maxBatch; b *= 2) buckets.push(b);
  buckets.push(maxBatch);
  return buckets;
}

export function planInferencePeak(
  c: AndromedaConfig,
  w: InferenceWorkload,
  engine: EngineKind,
  sms = 132,
): InferenceMemory {
  const bytes = DTYPE_BYTES[w.kvDtype];
  const poolBlocks = kvCacheBlocks(w) + 1;
  const kvElements = poolBlocks * w.blockSize * c.kvHeads * c.headDim;
  const tailElements = c.shiftTokens > 0 ? poolBlocks * c.shiftTokens * c.dim : 0;
  const chunkRows = Math.min(w.tokenBudget, w.batch * w.promptTokens);
  // The step's int32 indices per row (token ids, cache slots) and the block input, then the block's tensors.
  const indices = [
    { perRow: 1, float32: true, what: 'token ids' },
    { perRow: 1, float32: true, what: 'cache slots' },
    { perRow: c.dim, what: 'block input' },
  ];
  const block = blockTensors(c, { paged: true });
  const logits = rowGroups([{ perRow: c.vocabSize, float32: true, what: 'logits' }], w.batch, w.kvDtype);
  // Inside the attention call its split-KV scratch is live beside the tensors made before it; at the block's end
  // every tensor of the block is (none is freed before the block returns).
  const attentionEnd = block.findIndex((t) => t.what === 'attention output') + 1;
  const scratch =
    engine === 'cuda'
      ? pagedAttentionScratch(c, {
          sequences: Math.min(w.batch, Math.ceil(chunkRows / Math.max(1, Math.min(w.promptTokens, chunkRows)))),
          queries: chunkRows,
          maxQueryLen: Math.min(w.promptTokens, chunkRows),
          maxContext: w.promptTokens,
          sms,
        })
      : null;
  const duringAttention = [
    ...rowGroups([...indices, ...block.slice(0, attentionEnd)], chunkRows, w.kvDtype),
    ...(scratch
      ? [
          { count: 1, bytes: scratch.partialRows },
          { count: 1, bytes: scratch.statistics },
        ]
      : []),
  ];
  const blockEnd = [...rowGroups([...indices, ...block], chunkRows, w.kvDtype), ...logits];
  const widest =
    allocatedBytes(engine, duringAttention) > allocatedBytes(engine, blockEnd)
      ? { groups: duringAttention, what: "one block's attention with its split-KV scratch" }
      : { groups: blockEnd, what: 'one block, then logits' };
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
    line(engine, `prefill working set (${chunkRows} rows: ${widest.what})`, widest.groups, '--token-budget'),
  ];
  if (engine === 'cuda' && w.cudaGraphs) {
    // Each captured decode graph keeps a private pool: one step's tensors at its batch bucket (rows of the
    // bucket through a block, the logits and the sampled ids), reused within the capture.
    const graphGroups = graphBuckets(w.batch).flatMap((b) => [
      ...rowGroups([...indices, ...block], b, w.kvDtype),
      ...rowGroups([{ perRow: c.vocabSize, float32: true, what: 'logits' }], b, w.kvDtype),
    ]);
    lines.push(line(engine, 'decode graphs (a pool per batch bucket)', graphGroups, '--batch'));
  }
  if (engine === 'cuda')
    lines.push(line(engine, 'cuBLASLt workspace', [{ count: 1, bytes: CUBLASLT_WORKSPACE_BYTES }], ''));
  return { lines, peakBytes: lines.reduce((s, l) => s + l.bytes, 0) };
}
