/** The parts of Hugging Face's `tokenizer.json` that Andromeda reads, and helpers to read them strictly. */

/** One pipeline component: `{ "type": "...", ...settings }`. */
export interface HfComponent {
  type: string;
  [field: string]: unknown;
}

export interface HfAddedToken {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

export interface HfBpeModel {
  type?: string;
  vocab?: Record<string, number>;
  merges?: Array<string | [string, string]>;
  unk_token?: string | null;
  continuing_subword_prefix?: string | null;
  end_of_word_suffix?: string | null;
  fuse_unk?: boolean;
  byte_fallback?: boolean;
  ignore_merges?: boolean;
  dropout?: number | null;
}

export interface HfTokenizerJson {
  version?: string;
  added_tokens?: HfAddedToken[];
  normalizer?: HfComponent | null;
  pre_tokenizer?: HfComponent | null;
  post_processor?: HfComponent | null;
  decoder?: HfComponent | null;
  model?: HfBpeModel;
}

/** `{ "String": "x" }` or `{ "Regex": "x" }`, the pattern of Split pre-tokenizers and Replace steps. */
export interface HfPattern {
  String?: string;
  Regex?: string;
}

/** Throws `${where}: message`; every reader takes one so errors name the file. */
export type Fail = (message: string) => never;

export function failIn(where: string): Fail {
  return (message: string): never => {
    throw new Error(`${where}: ${message}`);
  };
}

export function readString(component: HfComponent, field: string, fail: Fail): string {
  const value = component[field];
  if (typeof value !== 'string') fail(`${component.type} ${field} must be a string, got ${JSON.stringify(value)}`);
  return value as string;
}

export function readBoolean(component: HfComponent, field: string, fallback: boolean, fail: Fail): boolean {
  const value = component[field];
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'boolean')
    fail(`${component.type} ${field} must be true or false, got ${JSON.stringify(value)}`);
  return value as boolean;
}

export function readCount(component: HfComponent, field: string, fail: Fail): number {
  const value = component[field];
  if (!Number.isInteger(value) || (value as number) < 0)
    fail(`${component.type} ${field} must be a whole number ≥ 0, got ${JSON.stringify(value)}`);
  return value as number;
}

export function readChildren(component: HfComponent, field: string, fail: Fail): HfComponent[] {
  const value = component[field];
  if (!Array.isArray(value) || value.some((c) => typeof c !== 'object' || c === null || typeof c.type !== 'string'))
    fail(`${component.type} ${field} must be a list of components with a "type"`);
  return value as HfComponent[];
}
