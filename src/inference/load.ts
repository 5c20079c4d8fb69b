/** Loads a trained model from a checkpoint directory for generation. */
import '../backend/index.js';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, CheckpointError } from '../train/checkpoint.js';
import { getModelFamily } from '../train/families.js';
import '../train/andromeda-adapter.js';
import type { LanguageModel, ModelFamily } from '../train/model.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

export interface LoadedModel {
  model: LanguageModel;
  family: ModelFamily<any>;
  tokenizer: Tokenizer;
  dir: string;
  step: number;
  config: Record<string, unknown>;
}

export async function loadModelForInference(path: string, device: string): Promise<LoadedModel> {
  const ckpt = await loadCheckpoint(path, device);
  try {
    const familyName = typeof ckpt.trainer?.family === 'string' ? ckpt.trainer.family : 'andromeda';
    const family = getModelFamily(familyName);
    let model: LanguageModel;
    try {
      model = family.create(ckpt.modelConfig as never, { seed: 0, device });
    } catch (error) {
      throw new CheckpointError(`checkpoint ${ckpt.dir}: config.json does not describe a ${familyName} model: ${(error as Error).message}`);
    }
    try {
      model.loadStateDict(ckpt.weights);
    } catch (error) {
      model.dispose();
      throw new CheckpointError(`checkpoint ${ckpt.dir}: the weights do not fit the model in config.json: ${(error as Error).message}`);
    }
    if (ckpt.tokenizer.vocabSize > model.vocabSize) {
      model.dispose();
      throw new CheckpointError(`checkpoint ${ckpt.dir}: tokenizer vocabulary (${ckpt.tokenizer.vocabSize}) exceeds the model's (${model.vocabSize})`);
    }
    return { model, family, tokenizer: ckpt.tokenizer, dir: ckpt.dir, step: ckpt.step, config: ckpt.modelConfig };
  } finally {
    for (const t of ckpt.weights.values()) t.dispose();
  }
}

/** The `train-config.json` of the run a checkpoint belongs to, when present (for display). */
export function runConfigOf(checkpointDir: string): Record<string, unknown> | null {
  const path = join(checkpointDir, '..', '..', 'train-config.json');
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>) : null;
}
