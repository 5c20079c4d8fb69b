#!/usr/bin/env node
// The `andromeda` command line: dispatches to one subcommand per file in ./commands.
import '../engine/index.js';
import { UsageError, type Command } from './command.js';
import { printable } from './printable.js';
import { VERSION } from '../version.js';
import { tokenizeCommand } from './commands/tokenize.js';
import { trainCommand } from './commands/train.js';
import { generateCommand } from './commands/generate.js';
import { quickstartCommand } from './commands/quickstart.js';
import { convertCommand } from './commands/convert.js';
import { scoreCommand } from './commands/score.js';
import { chatCommand } from './commands/chat.js';
import { serveCommand } from './commands/serve.js';
import { compressCommand } from './commands/compress.js';
import { decompressCommand } from './commands/decompress.js';
import { envCommand } from './commands/env.js';
import { planCommand } from './commands/plan.js';

const commands: Command[] = [
  quickstartCommand,
  tokenizeCommand,
  trainCommand,
  generateCommand,
  chatCommand,
  convertCommand,
  scoreCommand,
  serveCommand,
  compressCommand,
  decompressCommand,
  envCommand,
  planCommand,
];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'Usage: andromeda <command> [options]',
    '',
    'Andromeda: long-context language models in TypeScript (CPU and CUDA engines).',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Run `andromeda <command> --help` for the options of a command; `andromeda --version` prints the version.',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    console.log(VERSION);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(overview());
    return name ? 0 : 1;
  }
  const command = commands.find((c) => c.name === name);
  if (!command) {
    console.error(`andromeda: unknown command '${printable(name)}'\n\n${overview()}`);
    return 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (e) {
    const err = e as Error;
    // Messages quote file contents (tensor names, config keys), so they are printed defanged.
    if (err instanceof UsageError) console.error(`andromeda ${name}: ${printable(err.message)}\n\n${command.usage}`);
    else if (process.env.ANDROMEDA_DEBUG) console.error(printable(String(err.stack)));
    else console.error(`andromeda ${name}: ${printable(String(err.message))}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
