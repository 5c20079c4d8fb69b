/** Hugging Face's BPE model: a piece's characters → vocabulary ids, then merges by rank. */
import { BpeMerger, MAX_BPE_VOCAB, type MergeRule } from '../bpe-merges.js';
import { bytesToByteLevelString, utf8Encoder } from '../utf8.js';
import type { Fail, HfBpeModel } from './schema.js';

const CACHE_LIMIT = 200_000;
const CACHEABLE_PIECE_LENGTH = 64;

export class BpeModel {
  /** Token string → id, and back. */
  readonly vocab: ReadonlyMap<string, number>;
  readonly idToToken: readonly (string | undefined)[];
  private readonly merger: BpeMerger;
  private readonly unkId: number | undefined;
  private readonly fuseUnk: boolean;
  private readonly byteFallbackIds: Int32Array | null;
  private readonly prefix: string;
  private readonly suffix: string;
  private readonly ignoreMerges: boolean;
  private readonly bytesMerge: boolean;
  private readonly cache = new Map<string, number[]>();

  /**
   * `byteIds`, for byte-level vocabularies, maps each byte to its single-byte token id, which lets
   * `tokenizeText` merge UTF-8 bytes directly.
   */
  constructor(json: HfBpeModel, fail: Fail, byteIds?: Int32Array) {
    if (json.type !== undefined && json.type !== 'BPE')
      fail(`model type ${JSON.stringify(json.type)} is not supported (only BPE)`);
    if (!json.vocab || typeof json.vocab !== 'object') fail('model has no "vocab"');
    if (!Array.isArray(json.merges)) fail('model has no "merges" list');
    if (json.dropout !== undefined && json.dropout !== null && json.dropout !== 0)
      fail(`BPE dropout ${json.dropout} is not supported (tokenization must be deterministic)`);

    const vocab = new Map<string, number>();
    const idToToken: (string | undefined)[] = [];
    for (const [token, id] of Object.entries(json.vocab!)) {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_BPE_VOCAB)
        fail(`vocab entry ${JSON.stringify(token)} has invalid id ${id}`);
      vocab.set(token, id);
      idToToken[id] = token;
    }
    this.vocab = vocab;
    this.idToToken = idToToken;
    this.prefix = json.continuing_subword_prefix ?? '';
    this.suffix = json.end_of_word_suffix ?? '';
    this.ignoreMerges = json.ignore_merges === true;
    this.fuseUnk = json.fuse_unk === true;
    if (json.unk_token !== undefined && json.unk_token !== null) {
      this.unkId = vocab.get(json.unk_token);
      if (this.unkId === undefined) fail(`unk_token ${JSON.stringify(json.unk_token)} is not in the vocab`);
    }
    if (json.byte_fallback === true) {
      this.byteFallbackIds = new Int32Array(256).fill(-1);
      for (let b = 0; b < 256; b++) {
        const id = vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
        if (id !== undefined) this.byteFallbackIds[b] = id;
      }
    } else this.byteFallbackIds = null;

    const rules: MergeRule[] = json.merges!.map((merge, i) => {
      const [a, b] = typeof merge === 'string' ? splitMergeString(merge) : merge;
      if (typeof a !== 'string' || typeof b !== 'string')
        return fail(`merge ${i} ${JSON.stringify(merge)} is not a pair`);
      const joined = a + (this.prefix && b.startsWith(this.prefix) ? b.slice(this.prefix.length) : b);
      const left = vocab.get(a);
      const right = vocab.get(b);
      const result = vocab.get(joined);
      if (left === undefined || right === undefined || result === undefined)
        return fail(`merge ${i} ${JSON.stringify(merge)} uses a token missing from vocab`);
      return { left, right, result };
    });
    this.merger = new BpeMerger(byteIds ?? new Int32Array(256), rules);
    this.bytesMerge = byteIds !== undefined;
  }

  /** Appends the ids of one pre-tokenized piece (in the vocabulary's alphabet) to `out`. */
  tokenize(piece: string, out: number[]): void {
    this.tokenizeCached(piece, out, (ids) => this.wholeOrMerged(piece, ids));
  }

  /**
   * Byte-level vocabularies only: the ids of a piece of plain text, the same as `tokenize` gives for its
   * byte-level spelling, computed from its UTF-8 bytes without building that string.
   */
  tokenizeText(piece: string, out: number[]): void {
    if (!this.bytesMerge) throw new Error('tokenizeText needs a byte-level vocabulary');
    this.tokenizeCached(piece, out, (ids) => {
      const bytes = utf8Encoder.encode(piece);
      const whole = this.ignoreMerges ? this.vocab.get(bytesToByteLevelString(bytes)) : undefined;
      if (whole !== undefined) ids.push(whole);
      else this.merger.encodePiece(bytes, ids);
    });
  }

  private tokenizeCached(piece: string, out: number[], compute: (ids: number[]) => void): void {
    if (piece.length === 0) return;
    const cacheable = piece.length <= CACHEABLE_PIECE_LENGTH;
    const cached = cacheable ? this.cache.get(piece) : undefined;
    if (cached !== undefined) {
      for (const id of cached) out.push(id);
      return;
    }
    const ids: number[] = [];
    compute(ids);
    if (cacheable) {
      if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
      this.cache.set(piece, ids);
    }
    for (const id of ids) out.push(id);
  }

  /** With ignore_merges, a piece that is itself a vocabulary entry is that one id. */
  private wholeOrMerged(piece: string, ids: number[]): void {
    const whole = this.ignoreMerges ? this.vocab.get(piece) : undefined;
    if (whole !== undefined) ids.push(whole);
    else this.merger.mergeIds(this.initialSymbols(piece), ids);
  }

  /** The id of each character (with the subword prefix/suffix), byte-fallback ids or unk where it has none. */
  private initialSymbols(piece: string): Int32Array {
    const chars = Array.from(piece);
    const ids: number[] = [];
    let pendingUnk = false;
    chars.forEach((ch, i) => {
      let symbol = i > 0 ? this.prefix + ch : ch;
      if (i === chars.length - 1) symbol += this.suffix;
      const id = this.vocab.get(symbol);
      if (id !== undefined) {
        if (pendingUnk) ids.push(this.unkId!);
        pendingUnk = false;
        ids.push(id);
        return;
      }
      if (this.byteFallbackIds) {
        const bytes = utf8Encoder.encode(symbol);
        if (bytes.every((b) => this.byteFallbackIds![b] >= 0)) {
          for (const b of bytes) ids.push(this.byteFallbackIds[b]);
          return;
        }
      }
      if (this.unkId === undefined) return;
      if (pendingUnk && !this.fuseUnk) ids.push(this.unkId);
      pendingUnk = true;
    });
    if (pendingUnk) ids.push(this.unkId!);
    return Int32Array.from(ids);
  }
}

function splitMergeString(merge: string): [string | undefined, string | undefined] {
  const parts = merge.split(' ');
  return parts.length === 2 ? [parts[0], parts[1]] : [undefined, undefined];
}
