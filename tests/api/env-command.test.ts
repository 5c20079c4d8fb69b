// `andromeda env`: what an installation can run on, through the real CLI in a child process. The report must
// agree with the engines themselves (the registry's own availability check) and name the addon files that exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import '../../src/engine/index.js';
import { deviceUnavailableReason } from '../../src/engine/registry.js';
import type { EnvReport } from '../../src/cli/commands/env.js';
import { CPU_ISAS } from '../../src/engine/cpu-settings.js';
import { HF_ARCHITECTURES } from '../../src/model/hf-families.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const packageJson = fileURLToPath(new URL('../../../package.json', import.meta.url));

function andromeda(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { timeout: 60_000, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('env --json reports the version, and each engine as the registry sees it', () => {
  const r = andromeda(['env', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as EnvReport;
  assert.equal(report.version, (JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string }).version);
  assert.equal(report.node, process.version);
  const cpu = report.engines.cpu;
  assert.equal(cpu.available, true);
  assert.ok(
    CPU_ISAS.some((isa) => cpu.description!.startsWith(`${isa} `)),
    cpu.description,
  );
  assert.ok(cpu.addon && existsSync(cpu.addon), `cpu addon ${cpu.addon}`);
  const cuda = report.engines.cuda;
  const reason = deviceUnavailableReason('cuda:0');
  assert.equal(cuda.available, reason === null);
  if (reason === null) assert.ok(cuda.description && cuda.description.length > 0);
  else assert.equal(cuda.reason, reason);
  if (cuda.source === 'missing') assert.equal(cuda.addon, null);
  else assert.ok(cuda.addon && existsSync(cuda.addon), `cuda addon ${cuda.addon}`);
  assert.deepEqual(report.huggingFace, HF_ARCHITECTURES);
});

test('env prints one line per engine, and rejects unknown options', () => {
  const r = andromeda(['env']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^andromeda \d+\.\d+\.\d+ \(Node v\d+/);
  assert.match(r.stdout, /^cpu: /m);
  assert.match(r.stdout, /^cuda: /m);
  assert.match(r.stdout, /^hugging face: LlamaForCausalLM, .*Phi3ForCausalLM, GemmaForCausalLM, Gemma2ForCausalLM$/m);
  const bad = andromeda(['env', '--gpu']);
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--gpu/);
});
