import { UsageError, type Command } from '../command.js';
import { isPositiveInteger, numberFlag, parseCommandArgs, positiveIntegerFlag } from '../args.js';
import { ConfigError } from '../../model/config.js';
import { resolveModelSource } from '../../plan/model-source.js';
import { GPUS, findGpu, type DeviceSpec } from '../../plan/devices.js';
import { cpuDevice } from '../../plan/cpu-device.js';
import { getEngine } from '../../engine/registry.js';
import type { CpuEngine } from '../../engine/cpu.js';
import { planRun } from '../../plan/plan.js';
import { formatPlan, planJson } from '../../plan/format.js';
import type { ComputeDType, Workload, ZeroStage } from '../../plan/workload.js';

const USAGE = `Usage: andromeda plan <model> [options]

Plans the memory and speed of running or training a model on a GPU (or this machine's CPU) before
anything is allocated: the CUDA allocator's peak line by line (weights, KV cache, activations as the
autograd keeps them, gradients, optimizer state, workspaces, the allocator's rounding), the CUDA
context, whether it fits, the largest batch and context that fit, and tokens/s from a roofline with
the efficiency this engine reached in bench/results/.

<model>: a preset (andromeda-3b, orca, small, tiny), a model config JSON, an Andromeda checkpoint or
training run folder, or a Hugging Face config.json (the file or its folder). Only the config is read.

Options:
  --mode <mode>           inference (default) or training
  --gpu <name>            a GPU from the table (default h100; --list-gpus shows them)
  --memory <size>         a device of this much memory instead, e.g. 24GB, 80GiB, 16000MiB
                          (GB and GiB both mean 2^30 bytes, as GPU memory is quoted); speed needs --gpu
  --device cpu            the CPU engine with this machine's RAM
  --batch <n>             requests at once (inference) or sequences per micro-batch (default 1)
  --vocab <n>             vocabulary size, replacing the model's (e.g. the tokenizer's)
  --json                  print the plan as JSON
  --list-gpus             print the GPU table and exit
  -h, --help              show this help
Inference:
  --prompt <n>            prompt tokens per request (default 2048)
  --output <n>            generated tokens per request (default 256)
  --dtype <dtype>         weights and KV cache: bfloat16 (default on a GPU) or float32 (default on the CPU);
                          the engine keeps both in one dtype
  --block-size <n>        KV-cache block positions, a power of two ≤ 256 (default 32)
  --token-budget <n>      prompt tokens prefilled per engine step (default 512)
Training:
  --seq <n>               sequence length (default 2048)
  --precision <dtype>     compute dtype: bfloat16 (default on a GPU) or float32 (default on the CPU);
                          masters and optimizer state are float32
  --optimizer <name>      adamw (default) or adamw8bit
  --checkpointing         activation checkpointing (each block recomputed in the backward pass)
  --grad-accum <n>        micro-batches per optimizer step (default 1)
  --gpus <n>              data-parallel GPUs (default 1)
  --zero <0-3>            ZeRO stage for --gpus > 1: 1 divides optimizer state and masters, 2 also
                          gradients, 3 also the weights (default 0: all replicated)

Examples:
  andromeda plan andromeda-3b --gpu rtx4090 --prompt 8192 --output 512
  andromeda plan orca --mode training --gpu a100-40 --batch 8 --seq 4096 --checkpointing
  andromeda plan ./Llama-3.2-1B/config.json --memory 24GB --batch 4 --json`;

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 2 ** 10,
  kib: 2 ** 10,
  mb: 2 ** 20,
  mib: 2 ** 20,
  gb: 2 ** 30,
  gib: 2 ** 30,
  tb: 2 ** 40,
  tib: 2 ** 40,
};

/** "24GB", "80 GiB", "16000MiB" → bytes. */
export function parseMemorySize(raw: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(raw);
  const unit = m ? (m[2] || 'gb').toLowerCase() : '';
  if (!m || !(unit in SIZE_UNITS) || !(Number(m[1]) > 0))
    throw new UsageError(`--memory must be a size such as 24GB, 80GiB or 16000MiB, got "${raw}"`);
  return Number(m[1]) * SIZE_UNITS[unit]!;
}

function dtypeFlag(name: string, raw: string | undefined, fallback: ComputeDType): ComputeDType {
  const value = raw ?? fallback;
  if (value !== 'bfloat16' && value !== 'float32')
    throw new UsageError(`--${name} must be bfloat16 or float32, got "${value}"`);
  return value;
}

/** The instruction set the CPU engine uses on this machine (undefined without its addon: the note names none). */
function cpuEngineIsa(): string | undefined {
  try {
    return (getEngine('cpu') as CpuEngine).cpuInfo().isa;
  } catch {
    return undefined;
  }
}

function chooseDevice(values: { gpu?: string; memory?: string; device?: string }): DeviceSpec {
  const given = [values.gpu && '--gpu', values.memory && '--memory', values.device && '--device'].filter(Boolean);
  if (given.length > 1) throw new UsageError(`give one of --gpu, --memory and --device, not ${given.join(' and ')}`);
  if (values.device !== undefined) {
    if (values.device !== 'cpu')
      throw new UsageError(`--device takes only cpu (name a GPU with --gpu), got "${values.device}"`);
    return cpuDevice(undefined, cpuEngineIsa());
  }
  if (values.memory !== undefined) {
    const bytes = parseMemorySize(values.memory);
    // A device known only by its memory: the CUDA engine's layout, no speed figures.
    return {
      name: `a GPU with ${values.memory}`,
      memoryBytes: bytes,
      bandwidth: 0,
      flops: 0,
      engine: 'cuda',
      // The key splits of the paged attention follow an H100's 132 multiprocessors.
      sms: 132,
      aliases: [],
    };
  }
  const gpu = findGpu(values.gpu ?? 'h100');
  if (!gpu)
    throw new UsageError(
      `--gpu: unknown GPU "${values.gpu}"; known: ${GPUS.map((g) => g.aliases[0]).join(', ')} ` +
        '(or give --memory for another card)',
    );
  return gpu;
}

export const planCommand: Command = {
  name: 'plan',
  summary: 'memory and speed of inference or training on a GPU, before allocating anything',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const { values, positionals } = parseCommandArgs(
      args,
      {
        mode: { type: 'string', default: 'inference' },
        gpu: { type: 'string' },
        memory: { type: 'string' },
        device: { type: 'string' },
        batch: { type: 'string' },
        vocab: { type: 'string' },
        prompt: { type: 'string' },
        output: { type: 'string' },
        dtype: { type: 'string' },
        'block-size': { type: 'string' },
        'token-budget': { type: 'string' },
        seq: { type: 'string' },
        precision: { type: 'string' },
        optimizer: { type: 'string', default: 'adamw' },
        checkpointing: { type: 'boolean', default: false },
        'grad-accum': { type: 'string' },
        gpus: { type: 'string' },
        zero: { type: 'string' },
        json: { type: 'boolean', default: false },
        'list-gpus': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (values['list-gpus']) {
      for (const g of GPUS)
        process.stdout.write(
          `${g.aliases[0]!.padEnd(12)} ${g.name.padEnd(20)} ${(g.memoryBytes / 2 ** 30).toFixed(0).padStart(4)} GiB  ` +
            `${(g.bandwidth / 1e12).toFixed(2)} TB/s  ${String(g.flops / 1e12).padStart(5)} TFLOP/s bf16\n`,
        );
      return;
    }
    if (positionals.length !== 1)
      throw new UsageError(
        `expected one <model> (a preset, config JSON, checkpoint or config.json), got ${positionals.length}`,
      );
    const mode = values.mode;
    if (mode !== 'inference' && mode !== 'training')
      throw new UsageError(`--mode must be inference or training, got "${mode}"`);
    const inferenceOnly = ['prompt', 'output', 'dtype', 'block-size', 'token-budget'] as const;
    const trainingOnly = ['seq', 'precision', 'grad-accum', 'gpus', 'zero'] as const;
    const misplaced = (mode === 'inference' ? trainingOnly : inferenceOnly).filter((k) => values[k] !== undefined);
    if (mode === 'inference' && values.checkpointing) misplaced.push('checkpointing' as never);
    if (mode === 'inference' && values.optimizer !== 'adamw') misplaced.push('optimizer' as never);
    if (misplaced.length)
      throw new UsageError(
        `${misplaced.map((k) => `--${k}`).join(', ')}: ` +
          `only for --mode ${mode === 'inference' ? 'training' : 'inference'}`,
      );
    const device = chooseDevice(values);
    const defaultDType: ComputeDType = device.engine === 'cpu' ? 'float32' : 'bfloat16';
    const batch = positiveIntegerFlag('batch', values.batch, 1);
    const vocab = values.vocab === undefined ? undefined : positiveIntegerFlag('vocab', values.vocab, 1);

    let workload: Workload;
    if (mode === 'inference') {
      const blockSize = positiveIntegerFlag('block-size', values['block-size'], 32);
      if (blockSize > 256 || (blockSize & (blockSize - 1)) !== 0)
        throw new UsageError(`--block-size must be a power of two from 1 to 256, got ${blockSize}`);
      workload = {
        mode: 'inference',
        batch,
        promptTokens: positiveIntegerFlag('prompt', values.prompt, 2048),
        outputTokens: positiveIntegerFlag('output', values.output, 256),
        kvDtype: dtypeFlag('dtype', values.dtype, defaultDType),
        blockSize,
        tokenBudget: Math.max(batch, positiveIntegerFlag('token-budget', values['token-budget'], 512)),
        cudaGraphs: device.engine === 'cuda',
      };
    } else {
      const optimizer = values.optimizer;
      if (optimizer !== 'adamw' && optimizer !== 'adamw8bit')
        throw new UsageError(`--optimizer must be adamw or adamw8bit, got "${optimizer}"`);
      const gpus = positiveIntegerFlag('gpus', values.gpus, 1);
      const zero = numberFlag('zero', values.zero, 0, (n) => [0, 1, 2, 3].includes(n), '0, 1, 2 or 3') as ZeroStage;
      if (zero > 0 && gpus === 1) throw new UsageError(`--zero ${zero} divides state over GPUs: give --gpus > 1`);
      if (device.engine === 'cpu' && gpus > 1)
        throw new UsageError('--gpus needs a GPU (--gpu or --memory), not --device cpu');
      const seqLen = numberFlag('seq', values.seq, 2048, (n) => isPositiveInteger(n) && n >= 2, 'an integer ≥ 2');
      workload = {
        mode: 'training',
        batch,
        seqLen,
        precision: dtypeFlag('precision', values.precision, defaultDType),
        optimizer,
        activationCheckpointing: values.checkpointing!,
        gradAccum: positiveIntegerFlag('grad-accum', values['grad-accum'], 1),
        gpus,
        zeroStage: zero,
      };
    }

    let source;
    try {
      source = resolveModelSource(positionals[0]!, vocab === undefined ? {} : { vocabSize: vocab });
    } catch (e) {
      if (e instanceof ConfigError || (e as Error).name === 'CheckpointError')
        throw new UsageError((e as Error).message);
      throw e;
    }
    const plan = planRun({ name: source.name, config: source.config }, workload, device);
    plan.warnings.unshift(...source.warnings);
    if (values.json) process.stdout.write(`${JSON.stringify({ source: source.kind, ...planJson(plan) }, null, 2)}\n`);
    else process.stdout.write(`${formatPlan(plan)}\n`);
  },
};
