import { existsSync, statSync } from 'node:fs';
import { Tensor } from '../../tensor/tensor.js';
import { assertDType } from '../../tensor/dtype.js';
import { formatShape } from '../../tensor/shape.js';
import { tidy } from '../../tensor/scope.js';
import { cast } from '../../ops/convert.js';
import { SafetensorsReader, writeSafetensors } from '../../io/safetensors.js';
import { loadCheckpoint } from '../../model/weights-file.js';
import { UsageError, type Command } from '../command.js';
import { checkOutputFile, parseCommandArgs, usableDevice } from '../args.js';

const USAGE = `Usage: andromeda score <checkpoint> <in.safetensors> <out.safetensors> [options]

Runs a checkpoint on given tokens and writes what it computes, to compare one to one with
another implementation (e.g. the PyTorch model a checkpoint was converted from).

Input tensors:
  tokens        int32 or int64 [batch, n] (required)
  segment_ids   int [batch, n] document ids of packed sequences (optional)
  positions     int [batch, n] positions (optional)
  Other tensors in the input file are ignored.
Output tensors:
  logits        float32 [batch, n, vocab]
  loss          float64 [1]: mean cross-entropy of logits[:, :-1] against tokens[:, 1:]
  grad.<name>   with --grads: float32 gradient of the loss for every parameter, named and
                shaped as in the original checkpoint when it was converted

Options:
  --grads                 also write parameter gradients
  --dtype <dtype>         compute dtype: float32 (default) or float64
  --device <device>       cpu (default), cuda, cuda:N or auto
  --attention <kind>      auto (default), fused or reference
  -h, --help              show this help

Example:
  andromeda score checkpoints/andromeda batch.safetensors scores.safetensors --grads`;

export const scoreCommand: Command = {
  name: 'score',
  summary: 'compute logits, loss and gradients of a checkpoint on given tokens',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseCommandArgs(
      args,
      {
        grads: { type: 'boolean', default: false },
        dtype: { type: 'string', default: 'float32' },
        device: { type: 'string', default: 'cpu' },
        attention: { type: 'string', default: 'auto' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (positionals.length !== 3)
      throw new UsageError(
        `expected <checkpoint> <in.safetensors> <out.safetensors>, got ${positionals.length} argument(s)`,
      );
    const [checkpoint, input, output] = positionals as [string, string, string];
    const dtype = assertDType(values.dtype!, '--dtype');
    if (dtype !== 'float32' && dtype !== 'float64')
      throw new UsageError(`--dtype must be float32 or float64, got ${dtype}`);
    const attention = values.attention!;
    if (attention !== 'auto' && attention !== 'fused' && attention !== 'reference')
      throw new UsageError(`--attention must be auto, fused or reference, got ${attention}`);
    if (!existsSync(checkpoint)) throw new UsageError(`checkpoint ${checkpoint} does not exist`);
    if (existsSync(input) && statSync(input).isDirectory())
      throw new UsageError(`<in.safetensors> ${input} is a directory; give a safetensors file`);
    checkOutputFile('<out.safetensors>', output, [
      { what: 'input', path: input },
      { what: 'checkpoint', path: checkpoint },
    ]);
    const device = usableDevice(values.device);

    const reader = SafetensorsReader.open(input);
    let tokens: Tensor, segmentIds: Tensor | undefined, positions: Tensor | undefined;
    try {
      if (!reader.has('tokens'))
        throw new Error(`${input}: no 'tokens' tensor (it has: ${reader.names.join(', ') || 'none'})`);
      const entry = reader.entries.get('tokens')!;
      if (entry.shape.length !== 2)
        throw new Error(`${input}: tokens must be [batch, n], got ${formatShape(entry.shape)}`);
      // The loss is a mean over batch · (n − 1) next-token predictions: with none it is undefined, not 0.
      if (entry.shape[0] === 0 || entry.shape[1]! < 2) {
        throw new Error(
          `${input}: tokens ${formatShape(entry.shape)} hold no next-token prediction to score (need batch ≥ 1 and ` +
            `n ≥ 2)`,
        );
      }
      if (entry.dtype !== 'int32')
        throw new Error(`${input}: tokens must be integers (int32 or int64), got ${entry.storedDType}`);
      tokens = reader.readTensor('tokens', device);
      const optional = (name: string): Tensor | undefined => {
        if (!reader.has(name)) return undefined;
        const e = reader.entries.get(name)!;
        if (e.shape.join() !== tokens.shape.join())
          throw new Error(`${input}: ${name} ${formatShape(e.shape)} must match tokens ${formatShape(tokens.shape)}`);
        if (e.dtype !== 'int32')
          throw new Error(`${input}: ${name} must be integers (int32 or int64), got ${e.storedDType}`);
        return reader.readTensor(name, device);
      };
      segmentIds = optional('segment_ids');
      positions = optional('positions');
    } finally {
      reader.close();
    }

    const { model, origin } = loadCheckpoint(checkpoint, { device, dtype });
    try {
      const outputs = tidy(() => {
        const options = { segmentIds, positions, attention } as const;
        const logits = model.forward(tokens, options);
        const loss = model.loss(tokens, options);
        if (values.grads) loss.backward();
        const result = new Map<string, Tensor>([
          ['logits', cast(logits, 'float32')],
          ['loss', Tensor.fromArray([loss.item()], [1], 'float64', device)],
        ]);
        if (values.grads) {
          const original = new Map(origin?.parameters.map((p) => [p.name, p]) ?? []);
          for (const [name, param] of model.namedParameters()) {
            if (!param.grad) throw new Error(`internal: no gradient reached ${name}`);
            const o = original.get(name);
            result.set(
              `grad.${o?.originalName ?? name}`,
              cast(param.grad, 'float32').reshape(o?.originalShape ?? param.shape),
            );
          }
        }
        return result;
      });
      writeSafetensors(output, outputs);
      const loss = outputs.get('loss')!.item();
      for (const t of outputs.values()) t.dispose();
      process.stdout.write(`loss ${loss} on ${formatShape(tokens.shape)} tokens → ${output}\n`);
    } finally {
      model.dispose();
      tokens.dispose();
      segmentIds?.dispose();
      positions?.dispose();
    }
  },
};
