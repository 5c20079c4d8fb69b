import { BpeTokenizer } from './bpe.js';
import { ByteTokenizer } from './byte.js';
import { isAndromedaTokenizerJson, TOKENIZER_FORMAT_VERSION } from './format.js';
import { HuggingFaceTokenizer, type HuggingFaceLoadOptions } from './huggingface.js';
import type { Tokenizer } from './tokenizer.js';
import { readBoundedText } from '../../io/bounded-read.js';

/** Builds a tokenizer from a parsed JSON document: Andromeda's own format or a Hugging Face tokenizer.json. */
export function tokenizerFromJSON(json: unknown, options: HuggingFaceLoadOptions = {}): Tokenizer {
  const where = options.source ?? 'tokenizer JSON';
  if (isAndromedaTokenizerJson(json)) {
    if (json.version !== TOKENIZER_FORMAT_VERSION)
      throw new Error(
        `${where}: tokenizer format version ${json.version} is not supported (expected ${TOKENIZER_FORMAT_VERSION})`,
      );
    if (json.type === 'byte') return ByteTokenizer.fromJSON(json);
    if (json.type === 'bpe') return BpeTokenizer.fromJSON(json);
    throw new Error(`${where}: unknown tokenizer type ${JSON.stringify((json as { type?: unknown }).type)}`);
  }
  if (typeof json === 'object' && json !== null && 'model' in json)
    return HuggingFaceTokenizer.fromJSON(json, { ...options, source: where });
  throw new Error(`${where}: neither an Andromeda tokenizer file nor a Hugging Face tokenizer.json`);
}

/** Reads a tokenizer file written by `Tokenizer.save` or a Hugging Face `tokenizer.json`. */
export async function loadTokenizer(
  path: string,
  options: Omit<HuggingFaceLoadOptions, 'source'> = {},
): Promise<Tokenizer> {
  let text: string;
  try {
    text = readBoundedText(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `tokenizer file not found: ${path}`
        : `cannot read tokenizer file ${path}: ${(error as Error).message}`,
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${(error as Error).message})`);
  }
  return tokenizerFromJSON(json, { ...options, source: path });
}
