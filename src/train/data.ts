/**
 * The trainer's data: tokenized dataset directories (--data), raw inputs tokenized on the fly
 * into <out>/data (reused when present), or the embedded default corpus (tokenized in memory).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCorpusTrainingData, openTrainingData, type TrainingData } from '../data/training-data.js';
import { tokenizeToDataset } from '../data/tokenize-dataset.js';
import { DATASET_MANIFEST } from '../data/dataset.js';
import { loadTokenizer } from '../data/tokenizer/load.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { parseDataSpec, type TrainConfig } from './config.js';

export interface OpenDataOptions {
  /** A tokenizer to use instead of the config's (on resume: the checkpoint's). */
  tokenizer?: Tokenizer;
  progress?: boolean;
  log?: (line: string) => void;
}

/** A short description of where the training text comes from. */
export function describeData(config: TrainConfig): string {
  if (config.data.length > 0) return config.data.join(', ');
  if (config.inputs.length > 0) return `${config.inputs.join(', ')} (tokenized into ${join(config.out, 'data')})`;
  return (
    'the embedded default corpus (prose: Moby-Dick + State of the Union addresses; code: TypeScript lib ' +
    'declarations)'
  );
}

export async function openData(config: TrainConfig, options: OpenDataOptions = {}): Promise<TrainingData> {
  const log = options.log ?? (() => {});
  if (config.data.length > 0) {
    for (const spec of config.data) {
      const { dir } = parseDataSpec(spec);
      if (!existsSync(dir))
        throw new Error(
          `--data ${dir}: no such directory (create one with \`andromeda tokenize <inputs> --out ${dir}\`)`,
        );
    }
    const data = await openTrainingData(config.data.map(parseDataSpec));
    if (options.tokenizer && JSON.stringify(options.tokenizer.toJSON()) !== JSON.stringify(data.tokenizer.toJSON())) {
      data.close();
      throw new Error('the dataset was tokenized with a different tokenizer than the checkpoint being resumed');
    }
    return data;
  }
  if (config.inputs.length > 0) {
    const dir = join(config.out, 'data');
    if (!existsSync(join(dir, DATASET_MANIFEST))) {
      log(`tokenizing ${config.inputs.join(', ')} into ${dir}`);
      await tokenizeToDataset({
        inputs: config.inputs,
        tokenizer: options.tokenizer ?? config.tokenizer,
        outDir: dir,
        jsonlField: config.jsonlField,
        valFraction: config.valFraction,
        progress: options.progress ?? true,
        log,
      });
    }
    return openTrainingData([{ dir, name: 'inputs' }]);
  }
  return defaultCorpusTrainingData(
    options.tokenizer ??
      (config.tokenizer.startsWith('bpe:') || config.tokenizer === 'byte'
        ? config.tokenizer
        : await loadTokenizer(config.tokenizer)),
  );
}
