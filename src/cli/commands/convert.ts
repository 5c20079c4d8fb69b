import { copyFileSync, existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { assertDType, isFloating } from '../../tensor/dtype.js';
import { importXTransformers } from '../../model/xtransformers-import.js';
import { HF_ARCHITECTURES, importHuggingFace, isHuggingFaceCheckpoint } from '../../model/hf-import.js';
import { saveCheckpoint } from '../../model/weights-file.js';
import { UsageError, type Command } from '../command.js';
import { checkOutputDirectory, parseCommandArgs } from '../args.js';
import { printable } from '../printable.js';

const USAGE = `Usage: andromeda convert <source dir> <out dir> [options]

Converts a checkpoint into an Andromeda checkpoint (config.json + model.safetensors). The source
directory is either
  a Hugging Face transformers causal LM (${HF_ARCHITECTURES.join(', ')}):
    config.json                    with "architectures": [...]
    model.safetensors              or shards listed by model.safetensors.index.json (bf16/fp16/fp32)
  or an x-transformers 1.20 checkpoint — the form Andromeda's PyTorch code trains:
    config.json          {"wrapper": {TransformerWrapper arguments}, "decoder": {Decoder arguments}}
    weights.safetensors  the state dict, e.g. safetensors.torch.save_file(model.state_dict(), ...)
A transformers folder can also be given to generate/score directly, without converting.

Argument and parameter names are mapped to ours; the name map is kept in the output's config.json,
so \`andromeda score --grads\` reports gradients under the original names. Missing, unexpected or
mis-shaped tensors are an error that lists them.

Options:
  --dtype <dtype>   stored parameter dtype: float32 (default), float64, bfloat16, float16
  --force           write into <out dir> even if it is not empty
  -h, --help        show this help

Example:
  andromeda convert runs/andromeda-pytorch checkpoints/andromeda`;

const HF_TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json'];

export const convertCommand: Command = {
  name: 'convert',
  summary: 'convert a Hugging Face or x-transformers (Andromeda PyTorch) checkpoint into an Andromeda checkpoint',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseCommandArgs(
      args,
      {
        dtype: { type: 'string', default: 'float32' },
        force: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return;
    }
    if (positionals.length !== 2)
      throw new UsageError(`expected <source dir> and <out dir>, got ${positionals.length} argument(s)`);
    const [source, out] = positionals as [string, string];
    let dtype;
    try {
      dtype = assertDType(values.dtype!, '--dtype');
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    if (!isFloating(dtype)) throw new UsageError('--dtype must be a floating-point type');
    if (!existsSync(source)) throw new UsageError(`source directory ${source} does not exist`);
    if (!statSync(source).isDirectory())
      throw new UsageError(
        `source ${source} is a file; give the directory holding config.json and the safetensors weights`,
      );
    checkOutputDirectory('<out dir>', out);
    if (existsSync(out) && realpathSync(out) === realpathSync(source))
      throw new UsageError(`<out dir> ${out} is the source directory: converting would overwrite its config.json`);
    if (existsSync(out) && readdirSync(out).length > 0 && !values.force) {
      throw new Error(`${out} is not empty (use --force to write into it anyway)`);
    }
    const huggingFace = isHuggingFaceCheckpoint(source);
    const { model, origin, warnings } = huggingFace
      ? importHuggingFace(source, { dtype })
      : importXTransformers(source, { dtype });
    try {
      for (const w of warnings) process.stderr.write(`warning: ${printable(w)}\n`);
      saveCheckpoint(out, model, { origin });
      // The tokenizer files travel with the weights, so the converted checkpoint generates text as it is.
      if (huggingFace)
        for (const file of HF_TOKENIZER_FILES)
          if (existsSync(join(source, file))) copyFileSync(join(source, file), join(out, file));
      process.stdout.write(
        `converted ${source} → ${out}: ${model.parameterCount().toLocaleString('en-US')} parameters in ` +
          `${origin.parameters.length} tensors (${dtype})\n`,
      );
    } finally {
      model.dispose();
    }
  },
};
