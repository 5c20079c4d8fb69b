import { writeFile } from 'node:fs/promises';
import { BpeMerger } from './bpe-merges.js';
import { splitByPattern } from './pretokenize.js';
import { splitUtf8Runs, utf8Decoder, utf8Encoder } from './utf8.js';

export const DEFAULT_EOS_TOKEN = '<|endoftext|>';

export interface EncodeOptions {
  /**
   * When true, literal special-token strings in the text (e.g. "<|endoftext|>") become their ids.
   * Off by default so that document text can never inject control tokens.
   */
  allowSpecial?: boolean;
  /**
   * When true, adds the tokens a Hugging Face tokenizer's post-processor puts around a sequence (Llama's
   * `<|begin_of_text|>`, `<s>`, CLS/SEP). Tokenizers without a post-processor add none.
   */
  addSpecialTokens?: boolean;
}

export interface DecodeOptions {
  /** Leaves special tokens (BOS, EOS, chat markers) out of the text. */
  skipSpecialTokens?: boolean;
}

/** Every tokenizer (byte, trained BPE, Hugging Face) behind one interface. */
export interface Tokenizer {
  readonly kind: 'byte' | 'bpe' | 'huggingface';
  /** Number of ids; every id is in [0, vocabSize). */
  readonly vocabSize: number;
  /** End-of-document id, placed between documents in token shards. */
  readonly eosId: number;
  /** Special token text → id. */
  readonly specialTokens: ReadonlyMap<string, number>;
  /**
   * Encodes the UTF-8 bytes of `text`. A JavaScript string cannot hold invalid UTF-8, only lone
   * surrogates, which are encoded as U+FFFD (as TextEncoder does); to tokenize bytes that may not be
   * valid UTF-8 (file contents), use `encodeBytes`.
   */
  encode(text: string, options?: EncodeOptions): Int32Array;
  /**
   * Encodes arbitrary bytes, including invalid UTF-8, without loss: `decodeBytes(encodeBytes(b))` equals b.
   * Valid UTF-8 runs get the same ids as `encode` gives their text; bytes outside them get byte-level ids.
   */
  encodeBytes(bytes: Uint8Array): Int32Array;
  /** Decodes to text; byte sequences that are not valid UTF-8 become U+FFFD. */
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  decodeBytes(ids: ArrayLike<number>): Uint8Array;
  /** The bytes that one id stands for (a special token's UTF-8 text for special ids). */
  tokenBytes(id: number): Uint8Array;
  /** The JSON document that `loadTokenizer` reads back. */
  toJSON(): unknown;
  save(path: string): Promise<void>;
}

export interface ByteLevelTokenizerParts {
  vocabSize: number;
  eosId: number;
  specialTokens: ReadonlyMap<string, number>;
  /** Bytes of every id; special ids hold their UTF-8 text. */
  idToBytes: readonly Uint8Array[];
  /** Byte → single-byte token id, plus merges (none for the byte tokenizer). */
  merger: BpeMerger;
  /** Pre-tokenization regex, or null to treat each text segment as one piece. */
  pattern: RegExp | null;
  /** Text normalization applied before pre-tokenization (Hugging Face normalizers). */
  normalize?: (text: string) => string;
  /** Hugging Face `ignore_merges`: a piece that is itself a vocabulary entry becomes that one id. */
  wholePieceIds?: ReadonlyMap<string, number>;
}

const CACHE_LIMIT = 200_000;
const CACHEABLE_PIECE_LENGTH = 64;

/** Shared machinery: special-token splitting, pre-tokenization, BPE merges, a piece cache, decoding. */
export abstract class ByteLevelTokenizer implements Tokenizer {
  abstract readonly kind: Tokenizer['kind'];
  readonly vocabSize: number;
  readonly eosId: number;
  readonly specialTokens: ReadonlyMap<string, number>;
  private readonly idToBytes: readonly Uint8Array[];
  private readonly merger: BpeMerger;
  private readonly pattern: RegExp | null;
  private readonly normalize?: (text: string) => string;
  private readonly wholePieceIds?: ReadonlyMap<string, number>;
  private readonly specialRegex: RegExp | null;
  private readonly pieceCache = new Map<string, number[]>();

  protected constructor(parts: ByteLevelTokenizerParts) {
    this.vocabSize = parts.vocabSize;
    this.eosId = parts.eosId;
    this.specialTokens = parts.specialTokens;
    this.idToBytes = parts.idToBytes;
    this.merger = parts.merger;
    this.pattern = parts.pattern;
    this.normalize = parts.normalize;
    this.wholePieceIds = parts.wholePieceIds;
    if (this.idToBytes.length !== this.vocabSize) {
      throw new Error(`tokenizer has ${this.idToBytes.length} token byte strings but vocabSize ${this.vocabSize}`);
    }
    if (!(this.eosId >= 0 && this.eosId < this.vocabSize)) throw new Error(`eos id ${this.eosId} outside vocabulary`);
    const specials = [...this.specialTokens.keys()].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
    this.specialRegex = specials.length > 0 ? new RegExp(specials.map(escapeRegex).join('|'), 'g') : null;
  }

  encode(text: string, options: EncodeOptions = {}): Int32Array {
    const out: number[] = [];
    if (options.allowSpecial && this.specialRegex) {
      let last = 0;
      this.specialRegex.lastIndex = 0;
      for (let m = this.specialRegex.exec(text); m !== null; m = this.specialRegex.exec(text)) {
        this.encodeOrdinaryText(text.slice(last, m.index), out);
        out.push(this.specialTokens.get(m[0]) as number);
        last = m.index + m[0].length;
      }
      this.encodeOrdinaryText(text.slice(last), out);
    } else {
      this.encodeOrdinaryText(text, out);
    }
    return Int32Array.from(out);
  }

  encodeBytes(bytes: Uint8Array): Int32Array {
    const out: number[] = [];
    for (const run of splitUtf8Runs(bytes)) {
      const slice = bytes.subarray(run.start, run.end);
      if (run.valid) this.encodeOrdinaryText(utf8Decoder.decode(slice), out);
      else this.merger.encodePiece(slice, out);
    }
    return Int32Array.from(out);
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    if (options.skipSpecialTokens) {
      const special = new Set(this.specialTokens.values());
      ids = Array.from(ids).filter((id) => !special.has(id));
    }
    return utf8Decoder.decode(this.decodeBytes(ids));
  }

  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) total += this.tokenBytes(ids[i]).length;
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.idToBytes[ids[i]];
      out.set(bytes, offset);
      offset += bytes.length;
    }
    return out;
  }

  tokenBytes(id: number): Uint8Array {
    const bytes = Number.isInteger(id) ? this.idToBytes[id] : undefined;
    if (bytes === undefined) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    return bytes;
  }

  abstract toJSON(): unknown;

  async save(path: string): Promise<void> {
    await writeFile(path, JSON.stringify(this.toJSON()) + '\n');
  }

  private encodeOrdinaryText(text: string, out: number[]): void {
    if (text.length === 0) return;
    const normalized = this.normalize ? this.normalize(text) : text;
    if (this.pattern === null) {
      this.encodePiece(normalized, out);
      return;
    }
    for (const piece of splitByPattern(normalized, this.pattern)) this.encodePiece(piece, out);
  }

  private encodePiece(piece: string, out: number[]): void {
    const cacheable = piece.length <= CACHEABLE_PIECE_LENGTH;
    if (cacheable) {
      const cached = this.pieceCache.get(piece);
      if (cached !== undefined) {
        for (const id of cached) out.push(id);
        return;
      }
    }
    const whole = this.wholePieceIds?.get(piece);
    const ids: number[] = [];
    if (whole !== undefined) ids.push(whole);
    else this.merger.encodePiece(utf8Encoder.encode(piece), ids);
    if (cacheable) {
      if (this.pieceCache.size >= CACHE_LIMIT) this.pieceCache.clear();
      this.pieceCache.set(piece, ids);
    }
    for (const id of ids) out.push(id);
  }
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
