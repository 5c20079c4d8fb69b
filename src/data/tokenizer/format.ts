/** The JSON file format for tokenizers trained or defined by Andromeda (not Hugging Face's). */

export const TOKENIZER_FORMAT = 'andromeda-tokenizer';
export const TOKENIZER_FORMAT_VERSION = 1;

export interface SpecialTokenJson {
  content: string;
  id: number;
}

export interface ByteTokenizerJson {
  format: typeof TOKENIZER_FORMAT;
  version: number;
  type: 'byte';
  specialTokens: SpecialTokenJson[];
  eosToken: string;
}

export interface BpeTokenizerJson {
  format: typeof TOKENIZER_FORMAT;
  version: number;
  type: 'bpe';
  /** Pre-tokenization regex, in the Rust/Oniguruma syntax of Hugging Face tokenizer.json files. */
  pattern: string;
  /** Flattened merge pairs [left0, right0, left1, right1, ...]; merge i creates id 256 + i. */
  merges: number[];
  specialTokens: SpecialTokenJson[];
  eosToken: string;
}

export type AndromedaTokenizerJson = ByteTokenizerJson | BpeTokenizerJson;

export function isAndromedaTokenizerJson(value: unknown): value is AndromedaTokenizerJson {
  return typeof value === 'object' && value !== null && (value as { format?: unknown }).format === TOKENIZER_FORMAT;
}

/** Checks special tokens occupy exactly the ids [firstId, firstId + n) and names the EOS among them. */
export function validateSpecialTokens(
  specials: readonly SpecialTokenJson[],
  firstId: number,
  eosToken: string,
  where: string,
): Map<string, number> {
  const map = new Map<string, number>();
  specials.forEach((s, i) => {
    if (typeof s?.content !== 'string' || s.content.length === 0)
      throw new Error(`${where}: special token ${i} has no content`);
    if (s.id !== firstId + i)
      throw new Error(`${where}: special token ${JSON.stringify(s.content)} has id ${s.id}, expected ${firstId + i}`);
    if (map.has(s.content)) throw new Error(`${where}: special token ${JSON.stringify(s.content)} is listed twice`);
    map.set(s.content, s.id);
  });
  if (!map.has(eosToken))
    throw new Error(`${where}: eosToken ${JSON.stringify(eosToken)} is not one of the special tokens`);
  return map;
}
