import { BpeMerger, MAX_BPE_VOCAB, type MergeRule } from './bpe-merges.js';
import { type BpeTokenizerJson, validateSpecialTokens } from './format.js';
import { byteLevelBpeJson } from './huggingface/export.js';
import { compilePattern, GPT2_PATTERN } from './pretokenize.js';
import { ByteLevelTokenizer, DEFAULT_EOS_TOKEN } from './tokenizer.js';
import { concatBytes, utf8Encoder } from './utf8.js';

export interface BpeTokenizerOptions {
  /** Merge i joins the pair (left, right) into the new id 256 + i. */
  merges: ReadonlyArray<readonly [number, number]>;
  /** Pre-tokenization regex. Default: GPT-2's. */
  pattern?: string;
  /** Special tokens, placed after the merged tokens. Default: ["<|endoftext|>"]. */
  specialTokens?: readonly string[];
  eosToken?: string;
}

const IDENTITY_BYTES = Int32Array.from({ length: 256 }, (_, b) => b);

/** Byte-level BPE with Andromeda's id layout: 256 bytes, then one id per merge, then special tokens. */
export class BpeTokenizer extends ByteLevelTokenizer {
  readonly kind = 'bpe' as const;
  readonly merges: ReadonlyArray<readonly [number, number]>;
  readonly patternSource: string;

  constructor(options: BpeTokenizerOptions) {
    const merges = options.merges;
    const patternSource = options.pattern ?? GPT2_PATTERN;
    const specialTexts = options.specialTokens ?? [DEFAULT_EOS_TOKEN];
    const eosToken = options.eosToken ?? DEFAULT_EOS_TOKEN;
    const firstSpecial = 256 + merges.length;
    if (firstSpecial + specialTexts.length > MAX_BPE_VOCAB)
      throw new Error(`BPE vocabulary larger than ${MAX_BPE_VOCAB} is not supported`);
    const specials = validateSpecialTokens(
      specialTexts.map((content, i) => ({ content, id: firstSpecial + i })),
      firstSpecial,
      eosToken,
      'BPE tokenizer',
    );

    const idToBytes: Uint8Array[] = Array.from({ length: 256 }, (_, b) => Uint8Array.of(b));
    const rules: MergeRule[] = merges.map(([left, right], i) => {
      const result = 256 + i;
      if (!(left >= 0 && left < result && right >= 0 && right < result)) {
        throw new Error(`BPE merge ${i} (${left}, ${right}) refers to an id not defined before it`);
      }
      idToBytes.push(concatBytes([idToBytes[left], idToBytes[right]]));
      return { left, right, result };
    });
    for (const text of specials.keys()) idToBytes.push(utf8Encoder.encode(text));
    super({
      vocabSize: idToBytes.length,
      eosId: specials.get(eosToken) as number,
      specialTokens: specials,
      idToBytes,
      merger: new BpeMerger(IDENTITY_BYTES, rules),
      pattern: compilePattern(patternSource),
    });
    this.merges = merges;
    this.patternSource = patternSource;
  }

  static fromJSON(json: BpeTokenizerJson): BpeTokenizer {
    if (!Array.isArray(json.merges) || json.merges.length % 2 !== 0)
      throw new Error('BPE tokenizer file: "merges" must be a flat array of id pairs');
    const merges: Array<[number, number]> = [];
    for (let i = 0; i < json.merges.length; i += 2) merges.push([json.merges[i], json.merges[i + 1]]);
    const specials = json.specialTokens ?? [];
    validateSpecialTokens(specials, 256 + merges.length, json.eosToken, 'BPE tokenizer file');
    return new BpeTokenizer({
      merges,
      pattern: json.pattern,
      specialTokens: specials.map((s) => s.content),
      eosToken: json.eosToken,
    });
  }

  /** Hugging Face's tokenizer.json format (what `save` writes and `tokenizers` loads). */
  toJSON(): Record<string, unknown> {
    return byteLevelBpeJson({
      tokenBytes: Array.from({ length: 256 + this.merges.length }, (_, id) => this.tokenBytes(id)),
      merges: this.merges,
      pattern: this.patternSource,
      specialTokens: this.specialTokens,
    });
  }

  get eosToken(): string {
    for (const [text, id] of this.specialTokens) if (id === this.eosId) return text;
    throw new Error('unreachable: eos id is not a special token');
  }
}
