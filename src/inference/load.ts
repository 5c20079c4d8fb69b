/** Loads a trained model from a checkpoint directory for generation. */
import '../engine/index.js';
import { deviceUnavailableReason } from '../engine/registry.js';
import { loadCheckpoint, CheckpointError } from '../train/run-checkpoint.js';
import { getModelFamily } from '../train/families.js';
import '../train/andromeda-adapter.js';
import type { LanguageModel, ModelFamily } from '../train/model.js';
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { ByteTokenizer } from '../data/tokenizer/byte.js';
import { loadTokenizer } from '../data/tokenizer/load.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isHuggingFaceCheckpoint, readHuggingFaceCheckpoint } from '../model/hf-import.js';

export interface LoadedModel {
  model: LanguageModel;
  family: ModelFamily<any>;
  tokenizer: Tokenizer;
  dir: string;
  step: number;
  config: Record<string, unknown>;
}

/**
 * `tokenizerSpec` overrides or supplies the tokenizer: "byte" or a tokenizer.json path; undefined
 * uses the checkpoint's own tokenizer.json.
 */
export async function loadModelForInference(
  path: string,
  device: string,
  tokenizerSpec?: string,
): Promise<LoadedModel> {
  // Checked first: a device that cannot run here is not a fault of the checkpoint.
  const unavailable = deviceUnavailableReason(device);
  if (unavailable) throw new Error(`device ${device} cannot be used here: ${unavailable}`);
  if (isHuggingFaceCheckpoint(path)) return loadHuggingFace(path, device, tokenizerSpec);
  const ckpt = await loadCheckpoint(path, device);
  try {
    let tokenizer = ckpt.tokenizer;
    if (tokenizerSpec) tokenizer = tokenizerSpec === 'byte' ? new ByteTokenizer() : await loadTokenizer(tokenizerSpec);
    if (!tokenizer)
      throw new CheckpointError(
        `checkpoint ${ckpt.dir} has no tokenizer.json (converted checkpoints do not carry one): pass --tokenizer ` +
          `<tokenizer.json> or --tokenizer byte`,
      );
    const familyName = typeof ckpt.trainer?.family === 'string' ? ckpt.trainer.family : 'andromeda';
    const family = getModelFamily(familyName);
    let model: LanguageModel;
    try {
      model = family.create(ckpt.modelConfig as never, { seed: 0, device });
    } catch (error) {
      throw new CheckpointError(
        `checkpoint ${ckpt.dir}: config.json does not describe a ${familyName} model: ${(error as Error).message}`,
      );
    }
    try {
      model.loadStateDict(ckpt.weights);
    } catch (error) {
      model.dispose();
      throw new CheckpointError(
        `checkpoint ${ckpt.dir}: the weights do not fit the model in config.json: ${(error as Error).message}`,
      );
    }
    if (tokenizer.vocabSize > model.vocabSize) {
      model.dispose();
      throw new CheckpointError(
        `checkpoint ${ckpt.dir}: tokenizer vocabulary (${tokenizer.vocabSize}) exceeds the ` +
          `model's (${model.vocabSize})`,
      );
    }
    return { model, family, tokenizer, dir: ckpt.dir, step: ckpt.step, config: ckpt.modelConfig };
  } finally {
    for (const t of ckpt.weights.values()) t.dispose();
  }
}

/**
 * A transformers checkpoint folder (config.json + safetensors) loaded as an Andromeda model without
 * converting it first; its tokenizer.json, when there, is the tokenizer.
 */
async function loadHuggingFace(dir: string, device: string, tokenizerSpec?: string): Promise<LoadedModel> {
  let tokenizer: Tokenizer | null = null;
  if (tokenizerSpec) tokenizer = tokenizerSpec === 'byte' ? new ByteTokenizer() : await loadTokenizer(tokenizerSpec);
  else if (existsSync(join(dir, 'tokenizer.json'))) tokenizer = await loadTokenizer(join(dir, 'tokenizer.json'));
  if (!tokenizer)
    throw new CheckpointError(`${dir} has no tokenizer.json: pass --tokenizer <tokenizer.json> or --tokenizer byte`);
  const { config, weights, warnings } = readHuggingFaceCheckpoint(dir, { device });
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  try {
    const family = getModelFamily('andromeda');
    const model = family.create(config as never, { seed: 0, device });
    try {
      model.loadStateDict(weights);
    } catch (error) {
      model.dispose();
      throw error;
    }
    if (tokenizer.vocabSize > model.vocabSize) {
      model.dispose();
      throw new CheckpointError(
        `${dir}: tokenizer vocabulary (${tokenizer.vocabSize}) exceeds the model's (${model.vocabSize})`,
      );
    }
    return { model, family, tokenizer, dir, step: 0, config: config as unknown as Record<string, unknown> };
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}

/**
 * Loads the draft model of speculative decoding (`--draft`) for `target`: it must read the same token ids as
 * the same bytes, since it is fed the target's tokens. With `tokenizerSpec` both use that tokenizer; otherwise
 * the draft checkpoint's own tokenizer is compared with the target's, id by id. Errors name `flag` and `path`.
 */
export async function loadDraftModel(
  path: string,
  target: LoadedModel,
  device: string,
  tokenizerSpec: string | undefined,
  flag = '--draft',
): Promise<LoadedModel> {
  let draft: LoadedModel;
  try {
    draft = await loadModelForInference(path, device, tokenizerSpec);
  } catch (error) {
    throw new Error(`${flag} ${path}: ${(error as Error).message}`);
  }
  const mismatch = tokenizerMismatch(target.tokenizer, draft.tokenizer);
  if (mismatch) {
    draft.model.dispose();
    throw new Error(
      `${flag} ${path}: its tokenizer differs from the model's (${mismatch}); a draft must share the model's ` +
        'tokenizer',
    );
  }
  return draft;
}

/** Why two tokenizers do not map every id to the same bytes (null when they do). */
export function tokenizerMismatch(a: Tokenizer, b: Tokenizer): string | null {
  if (a.vocabSize !== b.vocabSize) return `${b.vocabSize} tokens instead of ${a.vocabSize}`;
  if (a.eosId !== b.eosId) return `end-of-document id ${b.eosId} instead of ${a.eosId}`;
  for (let id = 0; id < a.vocabSize; id++)
    if (Buffer.compare(Buffer.from(a.tokenBytes(id)), Buffer.from(b.tokenBytes(id))) !== 0)
      return `token ${id} stands for other bytes`;
  return null;
}
