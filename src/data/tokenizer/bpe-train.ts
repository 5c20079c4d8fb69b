import { BpeTokenizer } from './bpe.js';
import { MAX_BPE_VOCAB, pairKey } from './bpe-merges.js';
import { compilePattern, GPT2_PATTERN, splitByPattern } from './pretokenize.js';
import { DEFAULT_EOS_TOKEN } from './tokenizer.js';
import { utf8Encoder } from './utf8.js';

export interface BpeTrainOptions {
  /** Total vocabulary size including the 256 byte tokens and the special tokens. */
  vocabSize: number;
  pattern?: string;
  specialTokens?: readonly string[];
  eosToken?: string;
  /** Pairs seen fewer times than this are never merged. Default 2. */
  minPairCount?: number;
  /** Stop reading documents after this many UTF-16 code units of text. Default: read everything. */
  maxTrainChars?: number;
  /** Called now and then with (merges done, merges wanted). */
  onProgress?: (done: number, total: number) => void;
}

/**
 * Trains byte-level BPE on documents: GPT-2-style regex pre-tokenization, unique pieces
 * counted once, then greedy merging of the most frequent adjacent pair. Pair counts are
 * updated incrementally from the words that contain the merged pair, and a lazy max-heap
 * picks the next pair, so each merge costs time proportional to the words it touches.
 * Ties are broken by the smaller (left, right) ids, so training is deterministic.
 */
export async function trainBpe(
  documents: AsyncIterable<string> | Iterable<string>,
  options: BpeTrainOptions,
): Promise<BpeTokenizer> {
  const pattern = options.pattern ?? GPT2_PATTERN;
  const specialTokens = options.specialTokens ?? [DEFAULT_EOS_TOKEN];
  const mergesWanted = options.vocabSize - 256 - specialTokens.length;
  if (!Number.isInteger(options.vocabSize) || mergesWanted < 0) {
    throw new Error(
      `BPE vocab size ${options.vocabSize} is too small: it must cover 256 byte tokens ` +
        `and ${specialTokens.length} special token(s)`,
    );
  }
  if (options.vocabSize > MAX_BPE_VOCAB)
    throw new Error(`BPE vocab size ${options.vocabSize} exceeds the supported maximum ${MAX_BPE_VOCAB}`);

  const pieceCounts = await countPieces(documents, compilePattern(pattern), options.maxTrainChars ?? Infinity);
  const merges = learnMerges(pieceCounts, mergesWanted, options.minPairCount ?? 2, options.onProgress);
  return new BpeTokenizer({ merges, pattern, specialTokens, eosToken: options.eosToken });
}

async function countPieces(
  documents: AsyncIterable<string> | Iterable<string>,
  regex: RegExp,
  maxChars: number,
): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  let chars = 0;
  for await (const text of documents) {
    for (const piece of splitByPattern(text, regex)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
    chars += text.length;
    if (chars >= maxChars) break;
  }
  return counts;
}

/** The greedy merge loop over unique pieces ("words") weighted by their counts. */
export function learnMerges(
  pieceCounts: ReadonlyMap<string, number>,
  mergesWanted: number,
  minPairCount: number,
  onProgress?: (done: number, total: number) => void,
): Array<[number, number]> {
  const words: number[][] = [];
  const wordCounts: number[] = [];
  for (const [piece, count] of pieceCounts) {
    const bytes = utf8Encoder.encode(piece);
    if (bytes.length < 2) continue;
    words.push(Array.from(bytes));
    wordCounts.push(count);
  }

  const pairCounts = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  words.forEach((word, w) => {
    for (let i = 0; i + 1 < word.length; i++) {
      const key = pairKey(word[i], word[i + 1]);
      pairCounts.set(key, (pairCounts.get(key) ?? 0) + wordCounts[w]);
      let set = pairWords.get(key);
      if (!set) pairWords.set(key, (set = new Set()));
      set.add(w);
    }
  });
  const heap = new PairHeap();
  for (const [key, count] of pairCounts) heap.push(count, key);

  // bytes as latin-1, to spot duplicates
  const tokenText: string[] = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));
  const knownTokens = new Set(tokenText);
  const merges: Array<[number, number]> = [];
  const progressEvery = Math.max(1, Math.floor(mergesWanted / 100));

  while (merges.length < mergesWanted && heap.size > 0) {
    const { count, key } = heap.pop();
    if (pairCounts.get(key) !== count) continue; // stale entry
    if (count < minPairCount) break;
    const left = Math.floor(key / 0x200000);
    const right = key - left * 0x200000;
    const text = tokenText[left] + tokenText[right];
    pairCounts.delete(key);
    if (knownTokens.has(text)) continue; // same bytes as an existing token: merging would waste an id
    const newId = 256 + merges.length;
    merges.push([left, right]);
    tokenText.push(text);
    knownTokens.add(text);

    const deltas = new Map<number, number>();
    const addDelta = (k: number, d: number): void => {
      deltas.set(k, (deltas.get(k) ?? 0) + d);
    };
    for (const w of pairWords.get(key) ?? []) {
      const word = words[w];
      const merged: number[] = [];
      for (let i = 0; i < word.length;) {
        if (i + 1 < word.length && word[i] === left && word[i + 1] === right) {
          merged.push(newId);
          i += 2;
        } else merged.push(word[i++]);
      }
      if (merged.length === word.length) continue; // stale membership: the pair left this word earlier
      const c = wordCounts[w];
      for (let i = 0; i + 1 < word.length; i++) addDelta(pairKey(word[i], word[i + 1]), -c);
      for (let i = 0; i + 1 < merged.length; i++) {
        const k = pairKey(merged[i], merged[i + 1]);
        addDelta(k, c);
        if (merged[i] === newId || merged[i + 1] === newId) {
          let set = pairWords.get(k);
          if (!set) pairWords.set(k, (set = new Set()));
          set.add(w);
        }
      }
      words[w] = merged;
    }
    pairWords.delete(key);
    for (const [k, d] of deltas) {
      if (d === 0 || k === key) continue;
      const updated = (pairCounts.get(k) ?? 0) + d;
      if (updated > 0) {
        pairCounts.set(k, updated);
        heap.push(updated, k);
      } else {
        pairCounts.delete(k);
        pairWords.delete(k);
      }
    }
    if (onProgress && merges.length % progressEvery === 0) onProgress(merges.length, mergesWanted);
  }
  onProgress?.(merges.length, mergesWanted);
  return merges;
}

/** Max-heap of (count, pair key); larger count first, then smaller key. */
class PairHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  push(count: number, key: number): void {
    let i = this.counts.length;
    this.counts.push(count);
    this.keys.push(key);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(count, key, this.counts[p], this.keys[p])) break;
      this.counts[i] = this.counts[p];
      this.keys[i] = this.keys[p];
      i = p;
    }
    this.counts[i] = count;
    this.keys[i] = key;
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0], key: this.keys[0] };
    const count = this.counts.pop() as number;
    const key = this.keys.pop() as number;
    const n = this.counts.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const c = r < n && this.before(this.counts[r], this.keys[r], this.counts[l], this.keys[l]) ? r : l;
        if (!this.before(this.counts[c], this.keys[c], count, key)) break;
        this.counts[i] = this.counts[c];
        this.keys[i] = this.keys[c];
        i = c;
      }
      this.counts[i] = count;
      this.keys[i] = key;
    }
    return top;
  }

  private before(countA: number, keyA: number, countB: number, keyB: number): boolean {
    return countA > countB || (countA === countB && keyA < keyB);
  }
}
