import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { UsageError, type Command } from '../command.js';
import { checkOutputFile, parseCommandArgs } from '../args.js';
import {
  buildOnlineModel,
  checkpointHash,
  CompressedFileError,
  decompressBytes,
  engineIdentity,
  loadCheckpointModel,
  readHeader,
  type CodingModel,
} from '../../compress/index.js';

const USAGE = `Usage: andromeda decompress <in> <out> [--model <checkpoint>]

Restores a file made by \`andromeda compress\`, bit for bit. A file compressed with --model needs
the same checkpoint (its weights' SHA-256 is checked); an --online file needs no model. Decoding
runs the same model computations (and, for a file coded with --mix on, the same context-mixer
updates) as encoding, so it takes as long.

Options:
  --model <checkpoint>   the checkpoint or run directory the file was compressed with
  -h, --help             show this help

Example:
  andromeda decompress notes.andz notes.txt --model runs/quickstart`;

export const decompressCommand: Command = {
  name: 'decompress',
  summary: 'restore a file made by `andromeda compress`',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const { values, positionals } = parseCommandArgs(
      args,
      { model: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
      true,
    );
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (positionals.length !== 2) throw new UsageError(`expected <in> <out>, got ${positionals.length} argument(s)`);
    const [input, output] = positionals as [string, string];
    if (!existsSync(input)) throw new UsageError(`<in> ${input} does not exist`);
    if (!statSync(input).isFile()) throw new UsageError(`<in> ${input} is not a file`);
    checkOutputFile('<out>', output, [{ what: 'input', path: input }]);
    const { header, payload } = readHeader(new Uint8Array(readFileSync(input)), input);
    if (header.model.kind === 'online' && values.model !== undefined)
      throw new UsageError(`${input} was compressed in online mode and needs no --model`);
    if (header.model.kind === 'checkpoint') {
      if (values.model === undefined)
        throw new UsageError(
          `${input} was compressed with the checkpoint ${header.model.name} (weights SHA-256 ` +
            `${header.model.sha256}): pass it with --model`,
        );
      if (!existsSync(values.model)) throw new UsageError(`--model ${values.model} does not exist`);
      // Checked before loading: a wrong checkpoint is named without building its model.
      const { sha256 } = checkpointHash(values.model);
      if (sha256 !== header.model.sha256)
        throw new CompressedFileError(
          `${input} was compressed with the checkpoint ${header.model.name} ` +
            `(weights SHA-256 ${header.model.sha256}); ` +
            `--model ${values.model} is a different model (SHA-256 ${sha256})`,
        );
    }
    const model: CodingModel =
      header.model.kind === 'online' ? buildOnlineModel(header.model) : await loadCheckpointModel(values.model!);
    try {
      const started = performance.now();
      const data = decompressBytes(header, payload, model, { engine: engineIdentity(), name: input });
      const seconds = (performance.now() - started) / 1000;
      writeFileSync(output, data);
      process.stdout.write(
        `${input} → ${output}: ${data.length} bytes, CRC32 verified, ${seconds.toFixed(1)} s ` +
          `(${(data.length / 1024 / Math.max(seconds, 1e-9)).toFixed(2)} KiB/s)\n`,
      );
    } finally {
      model.dispose();
    }
  },
};
