import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlockManager } from '../../src/inference/block-manager.js';
import { QueueFullError, Scheduler, type StepLayout } from '../../src/inference/scheduler.js';
import { Sequence, type FinishReason, type TokenEvent } from '../../src/inference/sequence.js';
import { StopTextFilter } from '../../src/inference/stop-text.js';
import { ByteTokenizer } from '../../src/data/tokenizer/byte.js';

const tokenizer = new ByteTokenizer();

interface Recorded {
  events: TokenEvent[];
  reason: FinishReason | null;
}

function sequence(
  id: number,
  context: number[],
  o: { maxTokens?: number; stops?: string[]; stopIds?: number[]; deadline?: number } = {},
): { seq: Sequence; out: Recorded } {
  const out: Recorded = { events: [], reason: null };
  const seq = new Sequence(
    id,
    context,
    {
      maxTokens: o.maxTokens ?? 10,
      stopTokenIds: new Set(o.stopIds ?? []),
      stopText: new StopTextFilter(tokenizer, o.stops ?? []),
      deadline: o.deadline ?? null,
    },
    { token: (e) => out.events.push(e), finish: (r) => (out.reason = r) },
  );
  return { seq, out };
}

/**
 * A stand-in for the model that works only through the step layout, as the paged forward does: it
 * writes each row's token into a simulated pool at its slot, then reads every sampling sequence's
 * context back through its block table and context length. The next token is a hash of that context,
 * so any layout mistake (wrong slot, table, length, a shared block holding other tokens, a recompute
 * that skipped positions) changes the tokens.
 */
class PoolModel {
  readonly pool: Int32Array;
  readonly steps: StepLayout[] = [];

  constructor(private readonly blocks: BlockManager) {
    this.pool = new Int32Array(blocks.numBlocks * blocks.blockSize).fill(-1);
  }

  run(step: StepLayout): number[] {
    this.steps.push(step);
    const bs = step.blockSize;
    step.tokens.forEach((t, row) => (this.pool[step.slots[row]!] = t));
    return Array.from(step.logitRows, (row, r) => {
      const s = step.queryStart.findIndex(
        (start, i) => i < step.numSeqs && row < step.queryStart[i + 1]! && row >= start,
      );
      assert.equal(step.sampling[r], step.entries[s]!.sequence);
      const context: number[] = [];
      for (let p = 0; p < step.contextLens[s]!; p++) {
        const block = step.blockTables[s * step.maxBlocksPerSeq + Math.floor(p / bs)]!;
        context.push(this.pool[block * bs + (p % bs)]!);
      }
      assert.deepEqual(context, step.sampling[r]!.tokens, 'the pool holds the sequence through its block table');
      let h = 17;
      for (const t of context) h = (Math.imul(h, 31) + t) >>> 0;
      return 97 + (h % 26); // a lowercase letter
    });
  }
}

function runToEnd(scheduler: Scheduler, model: PoolModel, limit = 10_000): void {
  for (let i = 0; i < limit && scheduler.hasWork; i++) {
    const step = scheduler.schedule();
    if (!step) break;
    scheduler.complete(
      step,
      model.run(step).map((tokenId) => ({ tokenId })),
    );
  }
  assert.equal(scheduler.hasWork, false, 'all requests finished');
}

const prompt = (n: number, seed: number): number[] => Array.from({ length: n }, (_, i) => 32 + ((i * 7 + seed) % 90));

function stepOnce(scheduler: Scheduler, model: PoolModel): StepLayout {
  const step = scheduler.schedule();
  assert.ok(step, 'a step to run');
  scheduler.complete(
    step,
    model.run(step).map((tokenId) => ({ tokenId })),
  );
  return step;
}

/** Generated tokens of each sequence, run alone with plenty of blocks. */
function aloneTokens(contexts: number[][], maxTokens: number): number[][] {
  return contexts.map((context) => {
    const blocks = new BlockManager(256, 4);
    const scheduler = new Scheduler(blocks, { maxBatch: 1, tokenBudget: 64, maxQueue: 1 });
    const s = sequence(1, context, { maxTokens });
    scheduler.add(s.seq);
    runToEnd(scheduler, new PoolModel(blocks));
    return s.out.events.map((e) => e.tokenId);
  });
}

test('a long prompt is prefilled in chunks within the token budget while running sequences keep decoding', () => {
  const blocks = new BlockManager(64, 4);
  const scheduler = new Scheduler(blocks, { maxBatch: 4, tokenBudget: 8, maxQueue: 10 });
  const model = new PoolModel(blocks);
  const short = sequence(1, prompt(3, 1), { maxTokens: 12 });
  scheduler.add(short.seq);
  stepOnce(scheduler, model);
  stepOnce(scheduler, model);
  const long = sequence(2, prompt(30, 2), { maxTokens: 3 });
  scheduler.add(long.seq);
  const before = model.steps.length;
  runToEnd(scheduler, model);
  const prefillSteps = model.steps
    .slice(before)
    .filter((step) => step.entries.some((e) => e.sequence === long.seq && e.start < 30));
  assert.equal(prefillSteps.length, Math.ceil(30 / 7), 'chunks of the 7 rows the decode leaves in each step');
  for (const step of prefillSteps) {
    assert.ok(step.tokens.length <= 8, 'within the token budget');
    const decode = step.entries.find((e) => e.sequence === short.seq);
    assert.ok(decode && decode.count === 1 && decode.samples, 'the running sequence decodes in every prefill step');
    assert.equal(step.decodeOnly, false);
  }
  assert.ok(model.steps.slice(-1)[0]!.decodeOnly || model.steps.some((s) => s.decodeOnly));
  assert.equal(short.out.reason, 'length');
  assert.equal(long.out.reason, 'length');
  assert.deepEqual(
    [short, long].map((s) => s.out.events.map((e) => e.tokenId)),
    aloneTokens([prompt(3, 1), prompt(30, 2)], 12).map((t, i) => (i === 1 ? t.slice(0, 3) : t)),
  );
  assert.equal(blocks.usage().used, 0, 'finished sequences hold no blocks');
});

test('when blocks run out the newest sequence is preempted and recomputed, with the same tokens', () => {
  const contexts = [prompt(9, 1), prompt(5, 2), prompt(13, 3), prompt(7, 4)];
  const maxTokens = 14;
  // Each sequence needs up to 7 blocks of 4; 12 blocks hold fewer than two at full length.
  const blocks = new BlockManager(12, 4);
  const scheduler = new Scheduler(blocks, { maxBatch: 4, tokenBudget: 16, maxQueue: 10 });
  const model = new PoolModel(blocks);
  const runs = contexts.map((c, i) => sequence(i + 1, c, { maxTokens }));
  for (const r of runs) scheduler.add(r.seq);
  runToEnd(scheduler, model);
  const preempted = runs.filter((r) => r.seq.preemptions > 0);
  assert.ok(preempted.length > 0, 'the pool was small enough to preempt');
  assert.ok(scheduler.stats().preemptions >= preempted.length);
  assert.deepEqual(
    runs.map((r) => r.out.events.map((e) => e.tokenId)),
    aloneTokens(contexts, maxTokens),
  );
  for (const r of runs) assert.equal(r.out.reason, 'length');
  assert.equal(blocks.usage().used, 0);
  // The oldest sequence was never the one preempted while newer ones ran.
  assert.equal(runs[0]!.seq.preemptions, 0);
});

test('prefix sharing: a second request with the same system prompt computes only what differs', () => {
  const system = prompt(16, 9);
  const blocks = new BlockManager(64, 4);
  const scheduler = new Scheduler(blocks, { maxBatch: 4, tokenBudget: 64, maxQueue: 10 });
  const model = new PoolModel(blocks);
  const first = sequence(1, [...system, 1, 2], { maxTokens: 3 });
  scheduler.add(first.seq);
  runToEnd(scheduler, model);
  const second = sequence(2, [...system, 3, 4, 5], { maxTokens: 3 });
  scheduler.add(second.seq);
  const step = stepOnce(scheduler, model);
  assert.equal(step.entries[0]!.start, 16, 'the 4 system blocks came from the pool');
  assert.equal(step.tokens.length, 3);
  assert.deepEqual(scheduler.stats(), {
    preemptions: 0,
    prefixQueriedBlocks: 4 + 4,
    prefixHitBlocks: 4,
    prefixHitTokens: 16,
  });
  runToEnd(scheduler, model);
  assert.deepEqual(
    second.out.events.map((e) => e.tokenId),
    aloneTokens([[...system, 3, 4, 5]], 3)[0],
  );
});

/** A sequence whose "model" emits a fixed script, one byte token per step. */
function scripted(script: string, o: { stops?: string[]; stopIds?: number[]; maxTokens?: number }) {
  const blocks = new BlockManager(64, 4);
  const scheduler = new Scheduler(blocks, { maxBatch: 1, tokenBudget: 8, maxQueue: 1 });
  const s = sequence(1, [0], { maxTokens: o.maxTokens ?? 100, ...o });
  scheduler.add(s.seq);
  const bytes = Buffer.from(script);
  let i = 0;
  while (scheduler.hasWork) {
    const step = scheduler.schedule()!;
    scheduler.complete(step, [{ tokenId: bytes[i++] ?? 10 }]);
  }
  return { ...s.out, text: s.out.events.map((e) => e.text).join(''), pieces: s.out.events.map((e) => e.text) };
}

test('stop strings end generation across token boundaries and are never emitted, not even in part', () => {
  const r = scripted('Hello, STAR. Hello, STOP! more', { stops: ['STOP', 'never'] });
  assert.equal(r.reason, 'stop');
  assert.equal(r.text, 'Hello, STAR. Hello, ');
  assert.equal(r.events.length, 'Hello, STAR. Hello, STOP'.length, 'one event per token, the last one ends it');
  assert.ok(!r.pieces.some((p) => p.includes('ST') && !p.includes('STA')), 'a possible stop prefix is held back');
  // "ST" of "STAR" was held back until "A" showed it was no stop string.
  assert.deepEqual(r.pieces.slice(7, 10), ['', '', 'STA']);
  const none = scripted('abc', { stops: ['bd'], maxTokens: 3 });
  assert.equal(none.reason, 'length');
  assert.equal(none.text, 'abc', 'held-back text is emitted when the request ends otherwise');
  // Multi-byte characters: the stop string can end inside a character's bytes.
  const wide = scripted('x🐋y', { stops: ['🐋'] });
  assert.equal(wide.text, 'x');
});

test('stop token ids end generation; their own text is not emitted', () => {
  const r = scripted('abc|def', { stopIds: ['|'.charCodeAt(0)] });
  assert.equal(r.reason, 'stop');
  assert.equal(r.text, 'abc');
  assert.deepEqual(
    r.events.map((e) => e.tokenId),
    [...Buffer.from('abc|')],
  );
});

test('max tokens, timeout, cancel (blocks freed at once), queue limit, requests too large for the pool', () => {
  let now = 0;
  const blocks = new BlockManager(8, 4);
  const scheduler = new Scheduler(blocks, { maxBatch: 2, tokenBudget: 8, maxQueue: 2, now: () => now });
  const model = new PoolModel(blocks);
  const timed = sequence(1, prompt(6, 1), { maxTokens: 20, deadline: 50 });
  const cancelled = sequence(2, prompt(6, 2), { maxTokens: 20 });
  scheduler.add(timed.seq);
  scheduler.add(cancelled.seq);
  assert.throws(() => scheduler.add(sequence(3, [1], {}).seq), QueueFullError);
  stepOnce(scheduler, model);
  stepOnce(scheduler, model);
  assert.equal(blocks.usage().used, 4);
  assert.equal(scheduler.cancel(cancelled.seq), true);
  assert.equal(cancelled.out.reason, 'cancelled');
  assert.equal(blocks.usage().used, 2, 'the cancelled request released its blocks at once');
  assert.equal(scheduler.cancel(cancelled.seq), false);
  now = 50;
  assert.equal(scheduler.schedule(), null);
  assert.equal(timed.out.reason, 'timeout');
  assert.equal(timed.out.events.length, 2);
  assert.equal(blocks.usage().used, 0);
  assert.throws(() => scheduler.add(sequence(4, prompt(20, 1), { maxTokens: 14 }).seq), /needs 9 blocks .* pool's 8/);
  const limited = sequence(5, prompt(3, 1), { maxTokens: 4 });
  scheduler.add(limited.seq);
  runToEnd(scheduler, model);
  assert.equal(limited.out.reason, 'length');
  assert.equal(limited.out.events.length, 4);
  const zero = sequence(6, prompt(3, 1), { maxTokens: 0 });
  scheduler.add(zero.seq);
  assert.equal(zero.out.reason, 'length');
  assert.equal(scheduler.hasWork, false);
  assert.throws(() => new Scheduler(blocks, { maxBatch: 4, tokenBudget: 2, maxQueue: 1 }), /tokenBudget/);
});

test('a lookahead reserves and budgets proposals; runs advance the cache and stop at limits', () => {
  const blocks = new BlockManager(64, 4);
  const scheduler = new Scheduler(blocks, {
    maxBatch: 4,
    tokenBudget: 12,
    maxQueue: 8,
    lookahead: (s) => Math.min(3, s.limits.maxTokens - s.generated - 1),
  });
  const a = sequence(1, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { maxTokens: 6 });
  const b = sequence(2, [11, 12, 13], { maxTokens: 10, stopIds: [99] });
  scheduler.add(a.seq);
  scheduler.add(b.seq);
  // a: 10 rows + 3 proposals do not fit 12, so its prefill stops one short of its last token; b gets the rest.
  let step = scheduler.schedule()!;
  assert.deepEqual(
    step.entries.map((e) => [e.sequence.id, e.count, e.samples, e.proposals]),
    [
      [1, 9, false, 0],
      [2, 2, false, 0],
    ],
  );
  scheduler.completeRuns(step, []);
  step = scheduler.schedule()!;
  assert.deepEqual(
    step.entries.map((e) => [e.sequence.id, e.start, e.count, e.proposals]),
    [
      [1, 9, 1, 3],
      [2, 2, 1, 3],
    ],
  );
  // The proposals' positions are reserved: a's 10 + 3 positions take 4 blocks.
  assert.equal(blocks.blockTable(1).length, 4);
  // a accepted 2 proposals (+ the target's token); b's run stops at its stop id, the tokens after it dropped.
  scheduler.completeRuns(step, [
    [{ tokenId: 40 }, { tokenId: 41 }, { tokenId: 42 }],
    [{ tokenId: 50 }, { tokenId: 99 }, { tokenId: 51 }, { tokenId: 52 }],
  ]);
  assert.deepEqual(a.seq.tokens.slice(10), [40, 41, 42]);
  assert.equal(a.seq.computed, 12, 'positions of the accepted proposals are in the cache; the last token is not');
  assert.deepEqual(
    b.out.events.map((e) => e.tokenId),
    [50, 99],
  );
  assert.equal(b.out.reason, 'stop');
  assert.equal(blocks.has(2), false, 'a finished sequence frees its blocks at once');
  // a has 3 of 6 tokens: 2 more proposals at most (a step yields proposals + 1 tokens).
  step = scheduler.schedule()!;
  assert.deepEqual(
    step.entries.map((e) => [e.sequence.id, e.start, e.proposals]),
    [[1, 12, 2]],
  );
  scheduler.completeRuns(step, [[{ tokenId: 43 }, { tokenId: 44 }, { tokenId: 45 }]]);
  assert.equal(a.out.reason, 'length');
  assert.equal(a.seq.generated, 6);
});

/**
 * Runs the scheduler as the engine does with overlapSteps: each decode step has the step after it scheduled ahead
 * before its tokens are applied, and that step's rows take the tokens this one drew (as the device feeds them).
 * The ahead step runs when it is collected, after the step before it completed (the device's order). Returns how
 * many steps were scheduled ahead.
 */
function runAheadToEnd(scheduler: Scheduler, model: PoolModel, limit = 10_000): number {
  let ahead: StepLayout | null = null;
  let aheadSteps = 0;
  let fed: number[] = [];
  for (let i = 0; i < limit && scheduler.hasWork; i++) {
    const step: StepLayout | null = ahead ?? scheduler.schedule();
    ahead = null;
    if (!step) break;
    // A step scheduled ahead holds placeholders where the tokens the device feeds go.
    fed.forEach((token, r) => (step.tokens[r] = token));
    const tokens = model.run(step);
    ahead = scheduler.scheduleAhead(step);
    if (ahead) aheadSteps++;
    fed = ahead ? tokens : [];
    scheduler.complete(
      step,
      tokens.map((tokenId) => ({ tokenId })),
    );
  }
  assert.equal(scheduler.hasWork, false, 'all requests finished');
  return aheadSteps;
}

test('steps scheduled ahead give the same tokens, skip sequences that stopped meanwhile and free every block', () => {
  const contexts = [prompt(5, 1), prompt(9, 2), prompt(2, 3), prompt(14, 4)];
  const limits = [
    { maxTokens: 17, stopIds: [104] },
    { maxTokens: 6 },
    { maxTokens: 30, stops: ['zb'] },
    { maxTokens: 11 },
  ];
  const run = (ahead: boolean) => {
    const blocks = new BlockManager(64, 4);
    const scheduler = new Scheduler(blocks, { maxBatch: 4, tokenBudget: 16, maxQueue: 8 });
    const model = new PoolModel(blocks);
    const seqs = contexts.map((c, i) => sequence(i + 1, c, limits[i]));
    seqs.forEach((s) => scheduler.add(s.seq));
    const aheadSteps = ahead ? runAheadToEnd(scheduler, model) : (runToEnd(scheduler, model), 0);
    assert.equal(blocks.usage().used, 0, 'finished sequences hold no blocks');
    return { aheadSteps, out: seqs.map((s) => ({ ids: s.out.events.map((e) => e.tokenId), reason: s.out.reason })) };
  };
  const plain = run(false);
  const ahead = run(true);
  assert.deepEqual(ahead.out, plain.out);
  assert.ok(ahead.aheadSteps >= 5, `steps scheduled ahead: ${ahead.aheadSteps}`);
  // Two sequences stop while others run on (a stop token, a stop string): their steps ahead are dropped.
  assert.deepEqual(
    plain.out.map((o) => o.reason),
    ['stop', 'length', 'stop', 'length'],
  );
});

test('scheduleAhead refuses when the next step is not surely every sequence decoding one more token', () => {
  let now = 0;
  const blocks = new BlockManager(16, 4);
  const scheduler = new Scheduler(blocks, { maxBatch: 4, tokenBudget: 16, maxQueue: 8, now: () => now });
  const model = new PoolModel(blocks);
  const a = sequence(1, prompt(3, 1), { maxTokens: 3 });
  scheduler.add(a.seq);
  const prefill = stepOnce(scheduler, model);
  assert.equal(scheduler.scheduleAhead(prefill), null, 'a prefill step');
  const decode = scheduler.schedule()!;
  assert.ok(decode.decodeOnly);
  const ahead = scheduler.scheduleAhead(decode)!;
  assert.ok(ahead, 'a decode step of the only running sequence');
  assert.deepEqual([ahead.entries[0]!.start, ahead.contextLens[0], ahead.numSeqs], [4, 5, 1]);
  assert.equal(ahead.entries[0]!.sequence, a.seq);
  assert.equal(ahead.slots[0], ahead.blockTables[1]! * 4, 'position 4 opens a second block, taken ahead');
  scheduler.complete(decode, [{ tokenId: 100 }]);
  assert.equal(scheduler.scheduleAhead(ahead), null, "the token limit: the ahead step draws a's last token");
  scheduler.complete(ahead, [{ tokenId: 101 }]);
  assert.deepEqual([a.out.events.length, a.out.reason], [3, 'length']);

  const b = sequence(2, prompt(3, 2), { maxTokens: 20, deadline: 100 });
  const c = sequence(3, prompt(3, 3), { maxTokens: 20 });
  scheduler.add(b.seq);
  stepOnce(scheduler, model);
  scheduler.add(c.seq);
  const withC = scheduler.schedule()!;
  assert.equal(scheduler.scheduleAhead(withC), null, 'c prefills in it');
  scheduler.complete(withC, [{ tokenId: 102 }, { tokenId: 103 }]);
  const both = scheduler.schedule()!;
  assert.ok(both.decodeOnly && both.numSeqs === 2);
  scheduler.add(sequence(4, prompt(3, 4), { maxTokens: 20 }).seq);
  assert.equal(scheduler.scheduleAhead(both), null, 'a request waits to join');
  scheduler.complete(both, [{ tokenId: 104 }, { tokenId: 105 }]);
  const three = scheduler.schedule()!;
  scheduler.complete(three, [{ tokenId: 106 }, { tokenId: 107 }, { tokenId: 108 }]);
  const decodes = scheduler.schedule()!;
  assert.ok(decodes.decodeOnly && decodes.numSeqs === 3);
  assert.ok(scheduler.scheduleAhead(decodes), 'three decodes, blocks to spare');
  now = 100;
  assert.equal(scheduler.scheduleAhead(decodes), null, "b's deadline has passed");
  now = 0;
  scheduler.cancel(c.seq);
  assert.equal(scheduler.scheduleAhead(decodes), null, 'a sequence that has ended');

  // A pool of two blocks, one per sequence: their next positions need blocks nobody has.
  const tight = new BlockManager(2, 4);
  const small = new Scheduler(tight, { maxBatch: 2, tokenBudget: 8, maxQueue: 2 });
  const pair = [sequence(1, prompt(3, 5), { maxTokens: 4 }), sequence(2, prompt(3, 6), { maxTokens: 4 })];
  pair.forEach((p) => small.add(p.seq));
  stepOnce(small, new PoolModel(tight));
  const last = small.schedule()!;
  assert.ok(last.decodeOnly && last.numSeqs === 2);
  assert.equal(small.scheduleAhead(last), null, 'no blocks for the next positions');
  assert.deepEqual([small.stats().preemptions, small.runningCount], [0, 2], 'nobody was preempted for it');
});
