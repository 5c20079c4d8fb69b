/** Writes Andromeda's byte-level tokenizers as Hugging Face `tokenizer.json` documents. */
import { bytesToByteLevelString } from '../utf8.js';

export interface ByteLevelBpeExport {
  /** Bytes of every non-special id, in id order (ids 0-255 are the byte values). */
  tokenBytes: readonly Uint8Array[];
  /** Merge i joins (left, right); ids index `tokenBytes`. */
  merges: ReadonlyArray<readonly [number, number]>;
  /** Pre-tokenization regex, or null to keep each stretch between special tokens whole. */
  pattern: string | null;
  /** Special tokens, text → id. */
  specialTokens: ReadonlyMap<string, number>;
}

/**
 * The tokenizer as Hugging Face defines it (byte-level BPE, `ignore_merges` off, specials as added tokens);
 * `tokenizers.Tokenizer.from_file` reads it and gives the same ids.
 */
export function byteLevelBpeJson(tokenizer: ByteLevelBpeExport): Record<string, unknown> {
  const spelled = tokenizer.tokenBytes.map(bytesToByteLevelString);
  const vocab: Record<string, number> = {};
  spelled.forEach((token, id) => (vocab[token] = id));
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [...tokenizer.specialTokens].map(([content, id]) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer:
      tokenizer.pattern === null
        ? byteLevel
        : {
            type: 'Sequence',
            pretokenizers: [
              { type: 'Split', pattern: { Regex: tokenizer.pattern }, behavior: 'Isolated', invert: false },
              byteLevel,
            ],
          },
    post_processor: null,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: tokenizer.merges.map(([left, right]) => [spelled[left], spelled[right]]),
    },
  };
}
