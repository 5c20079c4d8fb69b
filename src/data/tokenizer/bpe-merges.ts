/**
 * The merge step shared by every byte-level BPE tokenizer here: bytes → initial ids, then
 * repeatedly merge the adjacent pair with the lowest merge rank (leftmost first on ties),
 * which is what GPT-2 and Hugging Face `tokenizers` do.
 */

const PAIR_SHIFT = 0x200000; // ids must stay below 2^21 so a pair fits one exact double
export const MAX_BPE_VOCAB = PAIR_SHIFT;

export function pairKey(left: number, right: number): number {
  return left * PAIR_SHIFT + right;
}

/** One merge rule: `left` followed by `right` becomes `result`. Its rank is its index in the list. */
export interface MergeRule {
  left: number;
  right: number;
  result: number;
}

export class BpeMerger {
  private readonly ranks = new Map<number, number>();
  private readonly results: Int32Array;

  /** `byteToId[b]` is the id of the single-byte token for byte b. */
  constructor(
    readonly byteToId: Int32Array,
    merges: readonly MergeRule[],
  ) {
    if (byteToId.length !== 256) throw new Error(`byteToId must have 256 entries, got ${byteToId.length}`);
    this.results = new Int32Array(merges.length);
    merges.forEach((m, rank) => {
      for (const id of [m.left, m.right, m.result]) {
        if (!Number.isInteger(id) || id < 0 || id >= MAX_BPE_VOCAB)
          throw new Error(`merge ${rank}: token id ${id} out of range`);
      }
      const key = pairKey(m.left, m.right);
      if (!this.ranks.has(key)) this.ranks.set(key, rank); // a repeated pair keeps its first (best) rank
      this.results[rank] = m.result;
    });
  }

  get mergeCount(): number {
    return this.results.length;
  }

  /** Appends the BPE ids of one pre-tokenized piece to `out`. */
  encodePiece(bytes: Uint8Array, out: number[]): void {
    const n = bytes.length;
    if (n === 1 || this.results.length === 0) {
      for (let i = 0; i < n; i++) out.push(this.byteToId[bytes[i]]);
      return;
    }
    const ids = new Int32Array(n);
    for (let i = 0; i < n; i++) ids[i] = this.byteToId[bytes[i]];
    this.mergeIds(ids, out);
  }

  /** Applies the merges to a piece given as its initial token ids (overwritten); appends the result to `out`. */
  mergeIds(ids: Int32Array, out: number[]): void {
    const n = ids.length;
    if (n <= 1 || this.results.length === 0) {
      for (let i = 0; i < n; i++) out.push(ids[i]);
      return;
    }
    // Doubly linked list over the piece's tokens plus a min-heap of candidate merges keyed by
    // (rank, position). Stale heap entries are skipped when popped, giving O(n log n) per piece.
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap: number[] = [];
    const pushCandidate = (pos: number): void => {
      const right = next[pos];
      if (right < 0) return;
      const rank = this.ranks.get(pairKey(ids[pos], ids[right]));
      if (rank !== undefined) heapPush(heap, rank * 0x80000000 + pos);
    };
    for (let i = 0; i + 1 < n; i++) pushCandidate(i);
    while (heap.length > 0) {
      const entry = heapPop(heap);
      const rank = Math.floor(entry / 0x80000000);
      const pos = entry - rank * 0x80000000;
      const right = next[pos];
      if (ids[pos] < 0 || right < 0 || this.ranks.get(pairKey(ids[pos], ids[right])) !== rank) continue;
      ids[pos] = this.results[rank];
      ids[right] = -1; // removed
      const after = next[right];
      next[pos] = after;
      if (after >= 0) prev[after] = pos;
      if (prev[pos] >= 0) pushCandidate(prev[pos]);
      pushCandidate(pos);
    }
    for (let i = 0; i >= 0; i = next[i]) out.push(ids[i]);
  }
}

function heapPush(heap: number[], value: number): void {
  let i = heap.length;
  heap.push(value);
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent] <= value) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): number {
  const top = heap[0];
  const last = heap.pop() as number;
  const n = heap.length;
  if (n > 0) {
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const child = r < n && heap[r] < heap[l] ? r : l;
      if (heap[child] >= last) break;
      heap[i] = heap[child];
      i = child;
    }
    heap[i] = last;
  }
  return top;
}
