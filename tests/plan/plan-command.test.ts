// `andromeda plan` end to end: every accepted model source, text and --json, the verdicts, the largest batch and
// context against the plan's own arithmetic, and clear errors for bad flags and files.
import '../../src/engine/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { planCommand, parseMemorySize } from '../../src/cli/commands/plan.js';
import { UsageError } from '../../src/cli/command.js';
import { Andromeda } from '../../src/model/andromeda.js';
import { saveCheckpoint } from '../../src/model/weights-file.js';
import { presetConfig } from '../../src/model/presets.js';
import { countParameters } from '../../src/model/parameter-shapes.js';
import { cpuSpeedNote } from '../../src/plan/cpu-device.js';
import { getEngine } from '../../src/engine/registry.js';
import type { CpuEngine } from '../../src/engine/cpu.js';

async function run(args: string[]): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write;
  try {
    await planCommand.run(args);
  } finally {
    process.stdout.write = write;
  }
  return out;
}

async function json(args: string[]): Promise<any> {
  return JSON.parse(await run([...args, '--json']));
}

const llamaConfig = {
  architectures: ['LlamaForCausalLM'],
  vocab_size: 32000,
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: 22,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  rms_norm_eps: 1e-5,
  max_position_embeddings: 2048,
  tie_word_embeddings: false,
};

test('every model source gives the same model as its config', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'andromeda-plan-'));
  // A preset, its config as a JSON file, and a checkpoint of it.
  const tiny = presetConfig('tiny');
  const configFile = join(dir, 'tiny.json');
  writeFileSync(configFile, JSON.stringify(tiny));
  const model = new Andromeda(tiny, { initialize: false });
  saveCheckpoint(join(dir, 'ckpt'), model);
  model.dispose();
  const expected = countParameters(tiny);
  for (const source of ['tiny', configFile, join(dir, 'ckpt')]) {
    const plan = await json([source, '--device', 'cpu', '--prompt', '64', '--output', '8']);
    assert.equal(plan.model.parameters, expected, source);
  }
  // A Hugging Face config.json, as a file and as its folder (TinyLlama's shape: 1.1B parameters).
  mkdirSync(join(dir, 'hf'));
  writeFileSync(join(dir, 'hf', 'config.json'), JSON.stringify(llamaConfig));
  const byFile = await json([join(dir, 'hf', 'config.json')]);
  const byFolder = await json([join(dir, 'hf')]);
  assert.equal(byFile.source, 'Hugging Face LlamaForCausalLM config');
  assert.equal(byFile.model.parameters, byFolder.model.parameters);
  const d = 2048,
    kv = 4 * 64;
  const perLayer = d * d * 2 + d * kv * 2 + 3 * d * 5632 + 2 * d;
  // Our model keeps a logits bias (zero for imported checkpoints) beside lm_head.
  assert.equal(byFile.model.parameters, 22 * perLayer + 2 * 32000 * d + d + 32000);
});

test('text output: the breakdown, the verdict, the largest batch and context, and the speed', async () => {
  const text = await run(['andromeda-3b', '--gpu', 'rtx4090', '--prompt', '4096', '--output', '256']);
  for (const part of [
    'RTX 4090 24GB',
    'weights (bfloat16)',
    'KV cache',
    'prefill working set',
    'decode graphs',
    'cuBLASLt workspace',
    'allocator rounding',
    'CUDA context',
    'fits:',
    'largest batch that fits:',
    'largest prompt that fits at batch 1:',
    'tokens/s',
    'bench/results/',
  ])
    assert.ok(text.includes(part), `missing "${part}" in:\n${text}`);
  const training = await run(['andromeda-3b', '--mode', 'training', '--gpu', 'a100-40', '--seq', '2048']);
  assert.match(training, /does NOT fit: .* the largest line is the AdamW moments/);
});

test('the largest batch and context are the edges of what fits', async () => {
  for (const base of [
    ['orca', '--mode', 'training', '--gpu', 'rtx3090', '--seq', '4096', '--checkpointing'],
    ['andromeda-3b', '--memory', '12GB', '--prompt', '1024', '--output', '128'],
  ]) {
    const plan = await json(base);
    const device = plan.memory.deviceBytes;
    const lengthFlag = plan.workload.mode === 'training' ? '--seq' : '--prompt';
    const at = async (flag: string, value: number) =>
      (await json([...base.filter((_, i, a) => a[i] !== flag && a[i - 1] !== flag), flag, String(value)])).memory
        .totalBytes;
    assert.ok(plan.maxBatch > 1);
    assert.ok((await at('--batch', plan.maxBatch)) <= device);
    assert.ok((await at('--batch', plan.maxBatch + 1)) > device);
    assert.ok((await at(lengthFlag, plan.maxContext)) <= device);
    assert.ok((await at(lengthFlag, plan.maxContext + 1)) > device);
  }
});

test('ZeRO stages divide the state they name, and 8-bit AdamW and checkpointing shrink theirs', async () => {
  const base = ['andromeda-3b', '--mode', 'training', '--seq', '2048'];
  const line = (plan: any, start: string) =>
    plan.memory.lines.find((l: { label: string }) => l.label.startsWith(start)).bytes as number;
  const one = await json(base);
  const zero1 = await json([...base, '--gpus', '8', '--zero', '1']);
  const zero3 = await json([...base, '--gpus', '8', '--zero', '3']);
  assert.ok(line(zero1, 'AdamW moments') < line(one, 'AdamW moments') / 7);
  assert.equal(line(zero1, 'weights'), line(one, 'weights'));
  assert.ok(line(zero3, 'weights') < line(one, 'weights') / 7);
  assert.ok(zero1.warnings.some((w: string) => w.includes('ZeRO-1')));
  const eight = await json([...base, '--optimizer', 'adamw8bit']);
  assert.ok(line(eight, 'AdamW 8-bit') < line(one, 'AdamW moments') / 3.5);
  const checkpointed = await json([...base, '--checkpointing']);
  assert.ok(line(checkpointed, 'activations') < line(one, 'activations') / 5);
});

test('parseMemorySize reads GPU-style sizes', () => {
  assert.equal(parseMemorySize('24GB'), 24 * 2 ** 30);
  assert.equal(parseMemorySize('80 GiB'), 80 * 2 ** 30);
  assert.equal(parseMemorySize('16000MiB'), 16000 * 2 ** 20);
  assert.equal(parseMemorySize('1.5TB'), 1.5 * 2 ** 40);
});

test('bad flags and files fail with a message naming them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'andromeda-plan-bad-'));
  writeFileSync(join(dir, 'broken.json'), '{ "dim": ');
  writeFileSync(join(dir, 'bad-config.json'), JSON.stringify({ dim: 100, heads: 3 }));
  writeFileSync(join(dir, 'gpt2.json'), JSON.stringify({ architectures: ['GPT2LMHeadModel'] }));
  const cases: Array<[string[], RegExp]> = [
    [[], /expected one <model>/],
    [['nonesuch'], /neither a preset .* nor an existing file/],
    [[join(dir, 'broken.json')], /broken\.json: not valid JSON/],
    [[join(dir, 'bad-config.json')], /invalid model config/],
    [[join(dir, 'gpt2.json')], /GPT2LMHeadModel.* not supported/],
    [[dir], /holds no checkpoint/],
    [['tiny', '--gpu', 'voodoo5'], /--gpu: unknown GPU "voodoo5"/],
    [['tiny', '--memory', 'lots'], /--memory must be a size/],
    [['tiny', '--gpu', 'h100', '--memory', '8GB'], /give one of --gpu, --memory and --device/],
    [['tiny', '--device', 'cuda'], /--device takes only cpu/],
    [['tiny', '--mode', 'serving'], /--mode must be inference or training/],
    [['tiny', '--batch', '0'], /--batch must be a positive integer/],
    [['tiny', '--seq', '128'], /--seq: only for --mode training/],
    [['tiny', '--mode', 'training', '--prompt', '5'], /--prompt: only for --mode inference/],
    [['tiny', '--mode', 'training', '--seq', '1'], /--seq must be an integer ≥ 2/],
    [['tiny', '--mode', 'training', '--optimizer', 'lion'], /--optimizer must be adamw or adamw8bit/],
    [['tiny', '--mode', 'training', '--zero', '2'], /--zero 2 divides state over GPUs: give --gpus > 1/],
    [['tiny', '--mode', 'training', '--gpus', '2', '--zero', '4'], /--zero must be 0, 1, 2 or 3/],
    [['tiny', '--dtype', 'float16'], /--dtype must be bfloat16 or float32/],
    [['tiny', '--block-size', '48'], /--block-size must be a power of two/],
    [['tiny', '--frobnicate'], /Unknown option '--frobnicate'/],
  ];
  for (const [args, message] of cases)
    await assert.rejects(run(args), (e: Error) => e instanceof UsageError && message.test(e.message), args.join(' '));
});

test('models the paged kernels cannot run are planned with how the engine keeps their keys and values', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'andromeda-plan-unpaged-'));
  let folders = 0;
  const plan = async (extra: object, device: string[]) => {
    const folder = join(dir, `model-${folders++}`);
    mkdirSync(folder);
    writeFileSync(join(folder, 'config.json'), JSON.stringify({ ...llamaConfig, ...extra }));
    return json([folder, ...device, '--prompt', '64', '--output', '8']);
  };
  const unpaged = (w: string) => w.includes('KV cache per sequence') || w.includes('recomputing');
  const cpu = ['--device', 'cpu'],
    h100 = ['--gpu', 'h100'];
  assert.ok(!(await plan({}, h100)).warnings.some(unpaged));
  // A sliding window: paged on the CPU, whose paged kernel has it; a cache per sequence on CUDA.
  const mistral = { architectures: ['MistralForCausalLM'], sliding_window: 32 };
  assert.ok(!(await plan(mistral, cpu)).warnings.some(unpaged));
  const onGpu = await plan(mistral, h100);
  assert.ok(
    onGpu.warnings.some((w: string) => w.includes('over a KV cache per sequence')),
    onGpu.warnings,
  );
  // A head size the CUDA kernels were not built for: paged on the CPU, a cache per sequence on CUDA.
  const wideHeads = { head_dim: 256 };
  assert.ok(!(await plan(wideHeads, cpu)).warnings.some(unpaged));
  const wideOnGpu = await plan(wideHeads, h100);
  assert.ok(
    wideOnGpu.warnings.some((w: string) => w.includes('head dim 256')),
    wideOnGpu.warnings,
  );
  const ntk = await plan({ rope_scaling: { type: 'dynamic', factor: 2 } }, cpu);
  assert.ok(
    ntk.warnings.some((w: string) => w.includes('by recomputing each step')),
    ntk.warnings,
  );
});

test('a CPU plan says what its tokens/s rest on: the measured machine type its kernels match', async () => {
  const isa = (getEngine('cpu') as CpuEngine).cpuInfo().isa;
  const text = await run(['small', '--device', 'cpu', '--prompt', '64', '--output', '8']);
  const note = text.split('\n').find((line) => line.trim().startsWith('note:'));
  const machine = isa === 'avx512' ? 'AMD EPYC Zen 4 with AVX-512' : 'AMD EPYC Zen 3 with AVX2';
  assert.ok(note?.includes(machine), text);
  assert.ok(note!.includes(`the engine runs ${isa} kernels here`), note);
  const plan = await json(['small', '--device', 'cpu', '--prompt', '64', '--output', '8']);
  assert.equal(plan.device.speedNote, cpuSpeedNote(isa));
  // A GPU plan carries no such note; each instruction set names the machine whose terms it gets.
  assert.equal((await json(['small', '--gpu', 'h100'])).device.speedNote, undefined);
  assert.match(cpuSpeedNote('avx2'), /Zen 3 with AVX2/);
  assert.match(cpuSpeedNote('avx512'), /Zen 4 with AVX-512/);
  assert.match(cpuSpeedNote(), /^CPU tokens\/s are from measurements on an AMD EPYC Zen 4/);
});
