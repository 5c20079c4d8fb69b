import { BpeMerger } from './bpe-merges.js';
import { type ByteTokenizerJson, validateSpecialTokens } from './format.js';
import { byteLevelBpeJson } from './huggingface/export.js';
import { ByteLevelTokenizer, DEFAULT_EOS_TOKEN } from './tokenizer.js';
import { utf8Encoder } from './utf8.js';

export interface ByteTokenizerOptions {
  /** Special tokens, given ids 256, 257, ... in this order. Default: ["<|endoftext|>"]. */
  specialTokens?: readonly string[];
  /** Which special token ends a document. Default: "<|endoftext|>". */
  eosToken?: string;
}

const IDENTITY_BYTES = Int32Array.from({ length: 256 }, (_, b) => b);

/** Ids 0–255 are the byte values themselves; special tokens follow. */
export class ByteTokenizer extends ByteLevelTokenizer {
  readonly kind = 'byte' as const;

  constructor(options: ByteTokenizerOptions = {}) {
    const specialTexts = options.specialTokens ?? [DEFAULT_EOS_TOKEN];
    const eosToken = options.eosToken ?? DEFAULT_EOS_TOKEN;
    const specials = validateSpecialTokens(
      specialTexts.map((content, i) => ({ content, id: 256 + i })),
      256,
      eosToken,
      'byte tokenizer',
    );
    const idToBytes = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
    for (const text of specials.keys()) idToBytes.push(utf8Encoder.encode(text));
    super({
      vocabSize: idToBytes.length,
      eosId: specials.get(eosToken) as number,
      specialTokens: specials,
      idToBytes,
      merger: new BpeMerger(IDENTITY_BYTES, []),
      pattern: null,
    });
  }

  static fromJSON(json: ByteTokenizerJson): ByteTokenizer {
    const specials = json.specialTokens ?? [];
    validateSpecialTokens(specials, 256, json.eosToken, 'byte tokenizer file');
    return new ByteTokenizer({ specialTokens: specials.map((s) => s.content), eosToken: json.eosToken });
  }

  /** Hugging Face's tokenizer.json format: a byte-level BPE without merges (what `save` writes). */
  toJSON(): Record<string, unknown> {
    return byteLevelBpeJson({
      tokenBytes: Array.from({ length: 256 }, (_, b) => Uint8Array.of(b)),
      merges: [],
      pattern: null,
      specialTokens: this.specialTokens,
    });
  }
}
