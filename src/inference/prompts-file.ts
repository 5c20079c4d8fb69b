/**
 * A file of prompts for batch generation: one prompt per line, or (for a `.jsonl` / `.ndjson` file) one
 * JSON object per line: `{"prompt": "...", "id": ..., ...per-prompt parameters}`. Blank lines are skipped.
 * Every line is checked before anything runs; errors name the file and line.
 */
import { validateSamplingParams } from './sampling-params.js';
import type { GenerationParams } from './engine.js';

export interface PromptEntry {
  /** Line of the file (1-based). */
  line: number;
  prompt: string;
  /** The entry's own "id" (any JSON value), echoed in the output. */
  id?: unknown;
  /** Parameters set by this entry; they override the command line's. */
  params: GenerationParams;
}

/** Per-prompt parameters a JSONL entry may set, and what each must be. */
const PARAMS: Record<string, (v: unknown) => boolean> = {
  maxTokens: (v) => Number.isInteger(v) && (v as number) >= 0,
  temperature: isNumber,
  topK: isNumber,
  topP: isNumber,
  minP: isNumber,
  repetitionPenalty: isNumber,
  frequencyPenalty: isNumber,
  presencePenalty: isNumber,
  seed: (v) => Number.isInteger(v),
  logprobs: (v) => typeof v === 'boolean',
  topLogprobs: isNumber,
  stop: (v) => typeof v === 'string' || (Array.isArray(v) && v.every((s) => typeof s === 'string')),
  stopTokenIds: (v) => Array.isArray(v) && v.every((id) => Number.isInteger(id)),
  ignoreEos: (v) => typeof v === 'boolean',
  timeoutMs: isNumber,
};

function isNumber(v: unknown): boolean {
  return typeof v === 'number' && Number.isFinite(v);
}

export class PromptsFileError extends Error {}

export function isJsonLinesPath(path: string): boolean {
  return /\.(jsonl|ndjson)$/i.test(path);
}

/** Parses the text of a prompts file (`path` names it in errors and picks the format). */
export function parsePromptsFile(path: string, text: string): PromptEntry[] {
  const jsonLines = isJsonLinesPath(path);
  const entries: PromptEntry[] = [];
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    entries.push(jsonLines ? jsonEntry(path, line, raw) : { line, prompt: raw, params: {} });
  });
  if (entries.length === 0) throw new PromptsFileError(`${path}: no prompts (every line is blank)`);
  return entries;
}

function jsonEntry(path: string, line: number, raw: string): PromptEntry {
  const where = `${path} line ${line}`;
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    throw new PromptsFileError(`${where}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new PromptsFileError(`${where}: expected an object like {"prompt": "..."}`);
  const { prompt, id, ...rest } = value as Record<string, unknown>;
  if (typeof prompt !== 'string') throw new PromptsFileError(`${where}: "prompt" must be a string`);
  const params: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(rest)) {
    const check = PARAMS[key];
    if (!check)
      throw new PromptsFileError(
        `${where}: unknown key "${key}" (known: prompt, id, ${Object.keys(PARAMS).join(', ')})`,
      );
    if (!check(v)) throw new PromptsFileError(`${where}: "${key}" has an invalid value ${JSON.stringify(v)}`);
    params[key] = v;
  }
  try {
    validateSamplingParams(params);
  } catch (e) {
    throw new PromptsFileError(`${where}: ${(e as Error).message}`);
  }
  const stops = typeof params.stop === 'string' ? [params.stop] : ((params.stop as string[] | undefined) ?? []);
  if (stops.some((s) => s === '')) throw new PromptsFileError(`${where}: "stop" strings must not be empty`);
  if (params.timeoutMs !== undefined && !((params.timeoutMs as number) > 0))
    throw new PromptsFileError(`${where}: "timeoutMs" must be a positive number`);
  const entry: PromptEntry = { line, prompt, params: params as GenerationParams };
  if (id !== undefined) entry.id = id;
  return entry;
}
