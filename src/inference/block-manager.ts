/**
 * The blocks of one paged KV-cache pool: which block holds which positions of which sequence.
 *
 * Every sequence owns a block table (block ids in position order; position p lives in block
 * `table[p / blockSize]` at offset `p % blockSize`). Blocks are reference-counted so that sequences with
 * a common prompt prefix share the blocks of that prefix: once a block is full (its K/V written), it is
 * registered under a chained hash of (parent block's hash, the block's token ids), and a later sequence
 * whose tokens hash the same reuses it instead of recomputing it. A block whose last reference goes
 * away keeps its hash and stays findable ("cached") until the pool needs it for something else; the
 * cached block unused for longest is reused first.
 *
 * Only full blocks are ever shared, and a full block is never written again, which is what makes
 * sharing safe (the token-shift tails of the paged cache rely on this too).
 *
 * The manager does host bookkeeping only; it never touches tensors. Allocation is all-or-nothing and
 * reports failure (`false`), so that the scheduler can preempt a sequence and try again.
 */
import { createHash } from 'node:crypto';

/** Memory of the pool in blocks. `used + cached + free = total`. */
export interface BlockUsage {
  total: number;
  /** Referenced by at least one sequence. */
  used: number;
  /** Unreferenced but holding a registered full block that a new sequence can still reuse. */
  cached: number;
  /** Unreferenced and holding nothing reusable. */
  free: number;
}

interface SequenceBlocks {
  table: number[];
  /** Hash of every full block of the table registered so far, in table order. */
  hashes: string[];
}

export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  private readonly refCounts: Int32Array;
  /** Hash of the full block a block id holds ('' for none). */
  private readonly blockHash: string[];
  /** Registered full blocks by hash. */
  private readonly byHash = new Map<string, number>();
  /** Unreferenced blocks without content, used first. */
  private readonly freeList: number[] = [];
  /** Unreferenced blocks with a hash, least recently released first (Map keeps insertion order). */
  private readonly cachedBlocks = new Map<number, true>();
  private readonly sequences = new Map<number, SequenceBlocks>();

  constructor(
    numBlocks: number,
    blockSize: number,
    private readonly prefixSharing = true,
  ) {
    if (!Number.isInteger(numBlocks) || numBlocks < 1)
      throw new RangeError(`block manager: numBlocks must be a positive integer, got ${numBlocks}`);
    if (!Number.isInteger(blockSize) || blockSize < 1 || blockSize > 256 || (blockSize & (blockSize - 1)) !== 0)
      throw new RangeError(`block manager: blockSize must be a power of two from 1 to 256, got ${blockSize}`);
    this.numBlocks = numBlocks;
    this.blockSize = blockSize;
    this.refCounts = new Int32Array(numBlocks);
    this.blockHash = new Array<string>(numBlocks).fill('');
    // Popped from the end: block 0 is handed out first.
    for (let b = numBlocks - 1; b >= 0; b--) this.freeList.push(b);
  }

  usage(): BlockUsage {
    const free = this.freeList.length;
    const cached = this.cachedBlocks.size;
    return { total: this.numBlocks, used: this.numBlocks - free - cached, cached, free };
  }

  /** Blocks an allocation can take now (free and cached ones). */
  get allocatableBlocks(): number {
    return this.freeList.length + this.cachedBlocks.size;
  }

  /** Blocks needed to hold `tokens` positions. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.blockSize);
  }

  has(sequenceId: number): boolean {
    return this.sequences.has(sequenceId);
  }

  /** The block table of a sequence (live view: do not modify). */
  blockTable(sequenceId: number): readonly number[] {
    return this.entry(sequenceId).table;
  }

  /** Reference count of a block (for tests and diagnostics). */
  refCount(block: number): number {
    return this.refCounts[block]!;
  }

  /**
   * Starts the block table of a new sequence with the longest run of its leading full blocks found
   * in the pool (each hit takes a reference). At least one token is always left to compute, since
   * the model must see the last token to predict the next one. Returns the number of positions
   * whose K/V the sequence now has without computing them (a multiple of the block size).
   */
  startSequence(sequenceId: number, tokens: ArrayLike<number>): number {
    if (this.sequences.has(sequenceId)) throw new Error(`block manager: sequence ${sequenceId} already has blocks`);
    const seq: SequenceBlocks = { table: [], hashes: [] };
    this.sequences.set(sequenceId, seq);
    if (!this.prefixSharing) return 0;
    const shareable = Math.floor((tokens.length - 1) / this.blockSize);
    let parent = '';
    for (let i = 0; i < shareable; i++) {
      const hash = blockHash(parent, tokens, i * this.blockSize, this.blockSize);
      const block = this.byHash.get(hash);
      if (block === undefined) break;
      this.reference(block);
      seq.table.push(block);
      seq.hashes.push(hash);
      parent = hash;
    }
    return seq.table.length * this.blockSize;
  }

  /**
   * Grows the sequence's table to cover `positions` positions. All or nothing: returns false (and
   * changes nothing) when the pool has too few free and cached blocks.
   */
  ensureCapacity(sequenceId: number, positions: number): boolean {
    const seq = this.entry(sequenceId);
    const needed = this.blocksFor(positions) - seq.table.length;
    if (needed <= 0) return true;
    if (needed > this.allocatableBlocks) return false;
    for (let i = 0; i < needed; i++) seq.table.push(this.takeBlock());
    return true;
  }

  /**
   * Registers the blocks that the first `computed` positions of `tokens` fill completely, once their
   * K/V are written, so that later sequences can share them. A block whose hash is already held by
   * another block (two sequences computed the same prefix at once) stays private to this sequence.
   */
  markComputed(sequenceId: number, tokens: ArrayLike<number>, computed: number): void {
    const seq = this.entry(sequenceId);
    if (!this.prefixSharing) return;
    const full = Math.min(Math.floor(computed / this.blockSize), seq.table.length);
    for (let i = seq.hashes.length; i < full; i++) {
      const hash = blockHash(seq.hashes[i - 1] ?? '', tokens, i * this.blockSize, this.blockSize);
      seq.hashes.push(hash);
      const block = seq.table[i]!;
      if (this.blockHash[block] === '' && !this.byHash.has(hash)) {
        this.blockHash[block] = hash;
        this.byHash.set(hash, block);
      }
    }
  }

  /**
   * Releases every block of a sequence (finished, cancelled or preempted). Blocks with a hash stay
   * findable; the table's tail is released first so that it is also reused first, keeping the
   * more widely shared leading blocks cached longest.
   */
  freeSequence(sequenceId: number): void {
    const seq = this.sequences.get(sequenceId);
    if (!seq) return;
    this.sequences.delete(sequenceId);
    for (let i = seq.table.length - 1; i >= 0; i--) this.release(seq.table[i]!);
  }

  private entry(sequenceId: number): SequenceBlocks {
    const seq = this.sequences.get(sequenceId);
    if (!seq) throw new Error(`block manager: sequence ${sequenceId} has no blocks (not started or already freed)`);
    return seq;
  }

  private reference(block: number): void {
    if (this.refCounts[block] === 0) this.cachedBlocks.delete(block);
    this.refCounts[block]!++;
  }

  private release(block: number): void {
    const count = --this.refCounts[block]!;
    if (count < 0) throw new Error(`block manager: block ${block} released more often than referenced`);
    if (count > 0) return;
    if (this.blockHash[block] !== '') this.cachedBlocks.set(block, true);
    else this.freeList.push(block);
  }

  /** A block with no content and one reference: a free one, else the least recently released cached one. */
  private takeBlock(): number {
    let block = this.freeList.pop();
    if (block === undefined) {
      const oldest = this.cachedBlocks.keys().next();
      if (oldest.done) throw new Error('block manager: no block to take (callers check allocatableBlocks first)');
      block = oldest.value;
      this.cachedBlocks.delete(block);
      this.byHash.delete(this.blockHash[block]!);
      this.blockHash[block] = '';
    }
    this.refCounts[block] = 1;
    return block;
  }
}

/**
 * The identity of a full block: SHA-256 of its parent's hash and its token ids, so equal hashes mean
 * equal whole prefixes (a collision would silently share wrong K/V, hence a cryptographic hash).
 */
function blockHash(parent: string, tokens: ArrayLike<number>, start: number, length: number): string {
  const ids = new Int32Array(length);
  for (let i = 0; i < length; i++) ids[i] = tokens[start + i]!;
  return createHash('sha256')
    .update(parent)
    .update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength))
    .digest('base64');
}
