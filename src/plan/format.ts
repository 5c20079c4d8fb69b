/** A plan as text for the terminal, and as plain data for --json. */
import { formatBytes } from '../train/memory-plan.js';
import type { RunPlan } from './plan.js';

const count = (n: number): string => Math.round(n).toLocaleString('en');

function describeDevice(plan: RunPlan): string {
  const d = plan.device;
  if (d.engine === 'cpu') return `${d.name}: ${formatBytes(d.memoryBytes)}`;
  const figures =
    d.bandwidth > 0 ? `, ${(d.bandwidth / 1e12).toFixed(2)} TB/s, ${count(d.flops / 1e12)} TFLOP/s bf16 dense` : '';
  return `${d.name} (${formatBytes(d.memoryBytes)}${figures})`;
}

function describeWorkload(plan: RunPlan): string {
  const w = plan.workload;
  if (w.mode === 'inference')
    return (
      `inference: ${w.batch} request${w.batch === 1 ? '' : 's'} of ${count(w.promptTokens)} prompt + ` +
      `${count(w.outputTokens)} output tokens, ${w.kvDtype} weights and KV cache, blocks of ${w.blockSize}, ` +
      `prefill chunks of ${count(w.tokenBudget)} tokens`
    );
  const divided = [
    'plain data parallelism (everything replicated)',
    'ZeRO-1 (optimizer state and masters divided)',
    'ZeRO-2 (optimizer state, masters and gradients divided)',
    'ZeRO-3 (optimizer state, masters, gradients and weights divided)',
  ][w.zeroStage];
  const sharding = w.gpus > 1 ? `, ${w.gpus} GPUs with ${divided}` : '';
  return (
    `training: batch ${w.batch} × ${count(w.seqLen)} tokens, ${w.precision} compute, ${w.optimizer}, activation ` +
    `checkpointing ${w.activationCheckpointing ? 'on' : 'off'}, gradient accumulation ${w.gradAccum}${sharding}`
  );
}

export function formatPlan(plan: RunPlan): string {
  const out: string[] = [];
  const engine = plan.device.engine === 'cuda' ? 'the CUDA engine' : 'the CPU engine';
  out.push(
    `${plan.model.name}: ${count(plan.model.parameters)} parameters, on ${describeDevice(plan)}`,
    describeWorkload(plan),
    '',
    `memory, as ${engine}'s allocator counts it` +
      `${plan.peakMoment ? ` (peak: the backward pass at ${plan.peakMoment})` : ''}:`,
  );
  const width = Math.max(...plan.lines.map((l) => l.label.length), 40);
  const row = (label: string, bytes: number): string => `  ${label.padEnd(width)}  ${formatBytes(bytes).padStart(10)}`;
  for (const l of plan.lines) out.push(row(l.label, l.bytes));
  const rounding = plan.lines.reduce((s, l) => s + l.bytes - l.nominal, 0);
  out.push(row('(allocator rounding, included above)', rounding));
  out.push(row('peak allocated', plan.peakBytes));
  if (plan.contextBytes > 0) out.push(row('CUDA context (outside the allocator)', plan.contextBytes));
  const free = plan.device.memoryBytes - plan.totalBytes;
  const largest = plan.lines.reduce((a, b) => (b.bytes > a.bytes ? b : a));
  out.push(
    row('total', plan.totalBytes),
    '',
    plan.fits
      ? `fits: ${formatBytes(plan.totalBytes)} of ${formatBytes(plan.device.memoryBytes)} ` +
          `(${formatBytes(free)} to spare)`
      : `does NOT fit: ${formatBytes(plan.totalBytes)} needed, ${formatBytes(plan.device.memoryBytes)} available ` +
          `(${formatBytes(-free)} over); the largest line is the ${largest.label}: lower ${largest.flags}`,
  );
  const w = plan.workload;
  const lengthWord = w.mode === 'training' ? 'sequence length' : 'prompt';
  out.push(
    `largest batch that fits: ${plan.maxBatch === 0 ? 'none' : count(plan.maxBatch)}`,
    `largest ${lengthWord} that fits at batch ${w.batch}: ${plan.maxContext === 0 ? 'none' : count(plan.maxContext)}`,
  );
  const t = plan.throughput;
  if (!t) out.push('', 'speed: name the GPU (--gpu) for a tokens/s estimate; --memory gives memory only');
  else
    out.push(
      '',
      w.mode === 'training'
        ? `estimated: ${count(t.tokensPerSecond)} tokens/s ` +
            `(${t.bound}-bound: ${(t.flopsPerToken / 1e9).toFixed(2)} GFLOP per token)`
        : `estimated: decode ${count(t.tokensPerSecond)} tokens/s over the batch (${t.bound}-bound: ` +
            `${formatBytes(t.bytesPerToken)} read per token), prefill ${count(t.prefillTokensPerSecond ?? 0)} tokens/s`,
      `  ${t.basis}`,
      ...(plan.device.speedNote ? [`  note: ${plan.device.speedNote}`] : []),
    );
  for (const warning of plan.warnings) out.push(`warning: ${warning}`);
  return out.join('\n');
}

/** The plan as JSON-ready data (the config, the device, every line, the verdict and the estimates). */
export function planJson(plan: RunPlan): Record<string, unknown> {
  return {
    model: { name: plan.model.name, parameters: plan.model.parameters, config: plan.model.config },
    device: { ...plan.device, aliases: undefined },
    workload: plan.workload,
    memory: {
      lines: plan.lines,
      allocatorRoundingBytes: plan.lines.reduce((s, l) => s + l.bytes - l.nominal, 0),
      peakAllocatedBytes: plan.peakBytes,
      peakMoment: plan.peakMoment ?? null,
      cudaContextBytes: plan.contextBytes,
      totalBytes: plan.totalBytes,
      deviceBytes: plan.device.memoryBytes,
    },
    fits: plan.fits,
    maxBatch: plan.maxBatch,
    maxContext: plan.maxContext,
    throughput: plan.throughput,
    warnings: plan.warnings,
  };
}
