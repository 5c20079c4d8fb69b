/** Seeded generators of awkward text and bytes for tokenizer property tests. */
import { Rng } from '../../src/data/random.js';

const WORDS = [
  'the',
  'whale',
  'Ishmael',
  'sea',
  "don't",
  "it's",
  'const',
  'function',
  '=>',
  '{',
  '}',
  '();',
  '123',
  '4.56',
  'naïve',
  'café',
  'Straße',
];
const ALPHABETS: Array<[number, number]> = [
  [0x20, 0x7e], // ASCII printable
  [0xa0, 0xff], // Latin-1
  [0x300, 0x36f], // combining marks
  [0x391, 0x3c9], // Greek
  [0x400, 0x4ff], // Cyrillic
  [0x4e00, 0x4fff], // CJK
  [0xac00, 0xacff], // Hangul
  [0x1f300, 0x1f6ff], // emoji (astral)
  [0x10000, 0x100ff], // Linear B (astral)
  [0xe000, 0xe0ff], // private use
];
const SPECIAL = [
  '\n',
  '\r\n',
  '\t',
  '  ',
  '\u200d',
  '\ufeff',
  '\u0000',
  '<|endoftext|>',
  '\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67',
  'e\u0301',
];

export function randomText(rng: Rng, maxPieces = 40): string {
  let out = '';
  const pieces = rng.nextInt(maxPieces + 1);
  for (let p = 0; p < pieces; p++) {
    const kind = rng.nextInt(4);
    if (kind === 0) out += WORDS[rng.nextInt(WORDS.length)] + (rng.nextInt(2) ? ' ' : '');
    else if (kind === 1) out += SPECIAL[rng.nextInt(SPECIAL.length)];
    else {
      const [lo, hi] = ALPHABETS[rng.nextInt(ALPHABETS.length)];
      const n = 1 + rng.nextInt(6);
      for (let i = 0; i < n; i++) out += String.fromCodePoint(lo + rng.nextInt(hi - lo + 1));
      if (rng.nextInt(3) === 0) out += ' ';
    }
  }
  return out;
}

/** Random bytes, mixing valid UTF-8 text with stray, truncated and overlong sequences. */
export function randomBytes(rng: Rng, maxLength = 80): Uint8Array {
  const parts: number[] = [];
  const target = rng.nextInt(maxLength + 1);
  const encoder = new TextEncoder();
  while (parts.length < target) {
    const kind = rng.nextInt(5);
    if (kind === 0) parts.push(...encoder.encode(randomText(rng, 3)));
    else if (kind === 1)
      parts.push(0x80 + rng.nextInt(64)); // stray continuation byte
    else if (kind === 2)
      parts.push(0xc0 + rng.nextInt(64)); // lead byte, often truncated
    else if (kind === 3)
      parts.push(
        ...[
          [0xed, 0xa0, 0x80],
          [0xc0, 0xaf],
          [0xf4, 0x90, 0x80, 0x80],
          [0xe0, 0x80, 0x80],
        ][rng.nextInt(4)],
      ); // surrogate, overlong, > U+10FFFF
    else parts.push(rng.nextInt(256));
  }
  return Uint8Array.from(parts.slice(0, target));
}
