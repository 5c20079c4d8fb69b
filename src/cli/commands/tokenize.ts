import { tokenizeToDataset } from '../../data/tokenize-dataset.js';
import { UsageError, type Command } from '../command.js';
import { checkOutputDirectory, numberFlag, parseCommandArgs, positiveIntegerFlag } from '../args.js';

const USAGE = `Usage: andromeda tokenize [inputs...] --out <dir> [options]

Tokenizes text into binary token shards for training, streaming (any corpus size).

Inputs are text files, directories (read recursively, dot-files skipped) and JSONL files
(.jsonl/.ndjson, one document per line). A text file is one document. With no inputs, the
embedded default corpus (public-domain prose + TypeScript declarations) is used, with its
fixed held-out split.

Options:
  --out <dir>              output directory (required): dataset.json, tokenizer.json,
                           train-NNNNN.bin and val-NNNNN.bin shards
  --tokenizer <spec>       byte             256 byte ids + <|endoftext|> (default)
                           bpe:<vocab size> byte-level BPE trained on the training documents
                           <path>           a Hugging Face tokenizer.json or a tokenizer saved
                                            by andromeda
  --jsonl-field <name>     JSONL field holding the text; a.b for nested fields (default: text)
  --shard-tokens <n>       tokens per shard file (default: 100000000)
  --val-fraction <f>       fraction of documents held out for validation, spread evenly
                           (default: 0.01; 0 for none; ignored for the default corpus)
  --bpe-train-chars <n>    read at most this much text to train BPE (default: 200000000)
  --eos-token <text>       end-of-document token of a Hugging Face tokenizer
                           (default: the first of <|endoftext|>, </s>, ... that it has)
  --quiet                  no progress bars
  -h, --help               show this help

Example:
  andromeda tokenize books/ web.jsonl --tokenizer bpe:8192 --out data/mix --val-fraction 0.02`;

export const tokenizeCommand: Command = {
  name: 'tokenize',
  summary: 'tokenize text files, directories or JSONL into training shards',
  usage: USAGE,
  async run(args: string[]): Promise<void> {
    const parsed = parseCommandArgs(
      args,
      {
        out: { type: 'string' },
        tokenizer: { type: 'string', default: 'byte' },
        'jsonl-field': { type: 'string', default: 'text' },
        'shard-tokens': { type: 'string' },
        'val-fraction': { type: 'string' },
        'bpe-train-chars': { type: 'string' },
        'eos-token': { type: 'string' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      true,
    );
    const { values, positionals } = parsed;
    if (values.help) {
      process.stdout.write(USAGE + '\n');
      return;
    }
    if (!values.out) throw new UsageError('--out <dir> is required');
    checkOutputDirectory('--out', values.out);
    const valFraction = numberFlag(
      'val-fraction',
      values['val-fraction'],
      0.01,
      (f) => f >= 0 && f < 1,
      'a number in [0, 1)',
    );
    const tokenizer = values.tokenizer as string;
    const bpe = /^bpe:(\d+)$/.exec(tokenizer);
    if (tokenizer.startsWith('bpe:') && (!bpe || Number(bpe[1]) < 258)) {
      throw new UsageError(
        `--tokenizer ${tokenizer}: write bpe:<vocab size> with a size of at least 258 (256 bytes + <|endoftext|> + ` +
          `1 merge)`,
      );
    }
    await tokenizeToDataset({
      inputs: positionals,
      tokenizer,
      outDir: values.out,
      jsonlField: values['jsonl-field'],
      shardTokens: positiveIntegerFlag('shard-tokens', values['shard-tokens'], 100_000_000),
      valFraction,
      bpeTrainChars: positiveIntegerFlag('bpe-train-chars', values['bpe-train-chars'], 200_000_000),
      eosToken: values['eos-token'],
      progress: !values.quiet,
    });
  },
};
