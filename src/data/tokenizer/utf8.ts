/** UTF-8 helpers for byte-exact tokenization: which byte runs are well-formed text and which are not. */

export const utf8Encoder = new TextEncoder();
/** Keeps a leading U+FEFF instead of silently dropping it, so bytes → text → bytes is exact. */
export const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

/** A half-open byte range [start, end) that is either well-formed UTF-8 or not. */
export interface ByteRun {
  start: number;
  end: number;
  valid: boolean;
}

/**
 * Splits `bytes` into maximal runs of well-formed UTF-8 and runs of bytes that are not
 * (stray continuation bytes, overlong forms, surrogates, truncated sequences, values past U+10FFFF).
 */
export function splitUtf8Runs(bytes: Uint8Array): ByteRun[] {
  const runs: ByteRun[] = [];
  let runStart = 0;
  let runValid = true;
  let i = 0;
  const push = (valid: boolean, length: number): void => {
    if (valid !== runValid) {
      if (i > runStart) runs.push({ start: runStart, end: i, valid: runValid });
      runStart = i;
      runValid = valid;
    }
    i += length;
  };
  while (i < bytes.length) {
    const length = wellFormedSequenceLength(bytes, i);
    if (length > 0) push(true, length);
    else push(false, 1);
  }
  if (i > runStart) runs.push({ start: runStart, end: i, valid: runValid });
  return runs;
}

/** Length of the well-formed UTF-8 sequence starting at `i`, or 0 if the byte there cannot start one. */
function wellFormedSequenceLength(b: Uint8Array, i: number): number {
  const b0 = b[i];
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  // Ranges from the Unicode standard, table 3-7 ("Well-Formed UTF-8 Byte Sequences").
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xe1 && b0 <= 0xec) || b0 === 0xee || b0 === 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/**
 * GPT-2's reversible map from the 256 byte values to printable unicode characters, used by
 * Hugging Face byte-level BPE vocabularies (e.g. the byte 0x20, a space, is written "Ġ").
 */
export function byteToUnicodeTable(): string[] {
  const printable: number[] = [];
  for (let c = 0x21; c <= 0x7e; c++) printable.push(c);
  for (let c = 0xa1; c <= 0xac; c++) printable.push(c);
  for (let c = 0xae; c <= 0xff; c++) printable.push(c);
  const table = new Array<string>(256);
  const isPrintable = new Set(printable);
  let next = 0;
  for (let byte = 0; byte < 256; byte++) {
    table[byte] = String.fromCharCode(isPrintable.has(byte) ? byte : 256 + next++);
  }
  return table;
}

const BYTE_TO_UNICODE = byteToUnicodeTable();
const UNICODE_TO_BYTE = new Map<string, number>(BYTE_TO_UNICODE.map((ch, byte) => [ch, byte]));

/** Bytes → the byte-level alphabet string used in Hugging Face vocabularies. */
export function bytesToByteLevelString(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += BYTE_TO_UNICODE[byte];
  return out;
}

/** Inverse of `bytesToByteLevelString`; undefined if a character is outside the 256-character alphabet. */
export function byteLevelStringToBytes(text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const byte = UNICODE_TO_BYTE.get(text[i]);
    if (byte === undefined) return undefined;
    out[i] = byte;
  }
  return out;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
