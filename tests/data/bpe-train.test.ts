import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/data/random.js';
import { learnMerges } from '../../src/data/tokenizer/bpe-train.js';

/** Reference trainer: recounts every pair from scratch before each merge. Slow but obviously right. */
function naiveMerges(
  pieceCounts: Map<string, number>,
  mergesWanted: number,
  minPairCount: number,
): Array<[number, number]> {
  const words = [...pieceCounts].map(([piece, count]) => ({ ids: Array.from(new TextEncoder().encode(piece)), count }));
  const bytesOf: string[] = Array.from({ length: 256 }, (_, b) => String.fromCharCode(b));
  const banned = new Set<string>();
  const merges: Array<[number, number]> = [];
  while (merges.length < mergesWanted) {
    const counts = new Map<string, number>();
    for (const w of words)
      for (let i = 0; i + 1 < w.ids.length; i++) {
        const key = `${w.ids[i]},${w.ids[i + 1]}`;
        counts.set(key, (counts.get(key) ?? 0) + w.count);
      }
    let best: [number, number] | null = null;
    let bestCount = 0;
    for (const [key, count] of counts) {
      if (banned.has(key)) continue;
      const [l, r] = key.split(',').map(Number);
      if (
        count > bestCount ||
        (count === bestCount && best !== null && (l < best[0] || (l === best[0] && r < best[1])))
      ) {
        best = [l, r];
        bestCount = count;
      }
    }
    if (best === null || bestCount < minPairCount) break;
    const text = bytesOf[best[0]] + bytesOf[best[1]];
    if (bytesOf.includes(text)) {
      banned.add(`${best[0]},${best[1]}`);
      continue;
    }
    const id = 256 + merges.length;
    merges.push(best);
    bytesOf.push(text);
    for (const w of words) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length;) {
        if (i + 1 < w.ids.length && w.ids[i] === best[0] && w.ids[i + 1] === best[1]) {
          out.push(id);
          i += 2;
        } else out.push(w.ids[i++]);
      }
      w.ids = out;
    }
  }
  return merges;
}

test('incremental pair counting learns exactly the merges a from-scratch recount would', () => {
  const rng = new Rng(23);
  const alphabet = ['a', 'b', 'c', 'aa', 'ab', 'é', '🐋', ' '];
  for (let trial = 0; trial < 25; trial++) {
    const pieceCounts = new Map<string, number>();
    const pieces = 5 + rng.nextInt(30);
    for (let p = 0; p < pieces; p++) {
      let piece = '';
      const length = 1 + rng.nextInt(10);
      for (let i = 0; i < length; i++) piece += alphabet[rng.nextInt(alphabet.length)];
      pieceCounts.set(piece, (pieceCounts.get(piece) ?? 0) + 1 + rng.nextInt(5));
    }
    const wanted = 1 + rng.nextInt(40);
    assert.deepEqual(learnMerges(pieceCounts, wanted, 2), naiveMerges(pieceCounts, wanted, 2), `trial ${trial}`);
  }
});
