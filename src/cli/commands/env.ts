import { existsSync } from 'node:fs';
import { relative, sep } from 'node:path';
import { parseCommandArgs } from '../args.js';
import type { Command } from '../command.js';
import { VERSION } from '../../version.js';
import { deviceUnavailableReason, getEngine } from '../../engine/registry.js';
import { requireAddon } from '../../engine/native-engine.js';
import type { CpuEngine } from '../../engine/cpu.js';
import type { CudaEngine } from '../../engine/cuda.js';
import { HF_ARCHITECTURES } from '../../model/hf-families.js';

const USAGE = `Usage: andromeda env [--json]

What this installation can run on: the package version, Node, and each engine — the file its
native code was loaded from (compiled here, or the prebuilt binary the package shipped), and
whether it can start on this machine (the CPU's instruction set; the GPU, or why there is none),
and the Hugging Face model classes it loads.

Options:
  --json       one JSON object instead of text
  -h, --help   show this help`;

/** One engine's part of the report. */
export interface EngineReport {
  /** The addon file the engine loads (compiled in build/Release, or a prebuild), or null when there is none. */
  addon: string | null;
  /** 'compiled' (build/Release), 'prebuilt' (prebuilds/) or 'missing'. */
  source: 'compiled' | 'prebuilt' | 'missing';
  available: boolean;
  /** The device as the engine describes it, when available. */
  description?: string;
  /** Why the engine cannot start here, when not available. */
  reason?: string;
}

export interface EnvReport {
  version: string;
  node: string;
  platform: string;
  engines: { cpu: EngineReport; cuda: EngineReport };
  /** The transformers architectures (config.json "architectures") that load and convert. */
  huggingFace: readonly string[];
}

function addonOf(file: string): Pick<EngineReport, 'addon' | 'source'> {
  const { path } = requireAddon(file);
  if (!existsSync(path)) return { addon: null, source: 'missing' };
  return { addon: path, source: path.includes(`${sep}prebuilds${sep}`) ? 'prebuilt' : 'compiled' };
}

/** Whether `device`'s engine starts here (the registry's own check), and how it describes itself if so. */
function probe(device: string, describe: () => string): Pick<EngineReport, 'available' | 'description' | 'reason'> {
  const reason = deviceUnavailableReason(device);
  return reason === null ? { available: true, description: describe() } : { available: false, reason };
}

/** What `andromeda env` reports; engines are started (a CUDA context is created when there is a GPU). */
export function environmentReport(): EnvReport {
  const cpu = {
    ...addonOf('andromeda_cpu.node'),
    ...probe('cpu', () => {
      const info = (getEngine('cpu') as CpuEngine).cpuInfo();
      return `${info.isa} (best on this CPU: ${info.cpuIsa}), gemm ${info.gemmF32}, ${info.threads} threads`;
    }),
  };
  const cuda = {
    ...addonOf('andromeda_cuda.node'),
    ...probe('cuda:0', () => (getEngine('cuda:0') as CudaEngine).description),
  };
  return {
    version: VERSION,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    engines: { cpu, cuda },
    huggingFace: HF_ARCHITECTURES,
  };
}

function formatEngine(name: string, e: EngineReport): string[] {
  const where = e.addon ? `${e.source}, ${relative(process.cwd(), e.addon) || e.addon}` : 'not installed';
  return [`${name}: ${e.available ? e.description : `unavailable — ${e.reason}`}`, `  engine: ${where}`];
}

export const envCommand: Command = {
  name: 'env',
  summary: 'what this installation can run on (engines, prebuilt or compiled, GPU)',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const { values } = parseCommandArgs(args, {
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    const report = environmentReport();
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    const lines = [
      `andromeda ${report.version} (Node ${report.node}, ${report.platform})`,
      ...formatEngine('cpu', report.engines.cpu),
      ...formatEngine('cuda', report.engines.cuda),
      `hugging face: ${report.huggingFace.join(', ')}`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};
