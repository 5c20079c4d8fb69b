/**
 * A token as text for log-probability reports. A byte-level token may hold part of a multi-byte
 * character; its text then has U+FFFD where the bytes are incomplete, and chat's `bytes` field carries
 * the exact bytes, as OpenAI reports them.
 */
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';

const lossy = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export function tokenText(tokenizer: Tokenizer, id: number): string {
  return lossy.decode(tokenizer.tokenBytes(id));
}

export function tokenByteList(tokenizer: Tokenizer, id: number): number[] {
  return Array.from(tokenizer.tokenBytes(id));
}
