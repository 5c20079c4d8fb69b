/** Regex pre-tokenization: text is cut into pieces (words, numbers, punctuation, spaces) before BPE. */
import { compileRustRegex } from './huggingface/regex.js';

/** GPT-2's pattern: contractions, optional-space + letters/numbers/other, and whitespace runs. */
export const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

/**
 * Compiles a pre-tokenizer pattern written for the Rust/Oniguruma regex dialects used by Hugging Face
 * and tiktoken, with their meaning (inline `(?i:...)` groups, Unicode-wide `\s` and `\w`), so that a
 * tokenizer Andromeda trains splits text exactly as `tokenizers` will when it loads the exported file.
 */
export function compilePattern(pattern: string): RegExp {
  return compileRustRegex(pattern, (message) => {
    throw new Error(`unsupported pre-tokenizer regex ${JSON.stringify(pattern)}: ${message}`);
  });
}

/**
 * Cuts `text` into the pattern's matches. Text between matches (which a complete pattern
 * never leaves) is kept as its own piece, so the pieces always concatenate back to `text`.
 */
export function splitByPattern(text: string, regex: RegExp): string[] {
  const pieces: string[] = [];
  let last = 0;
  regex.lastIndex = 0;
  for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
    if (m[0].length === 0) {
      regex.lastIndex++;
      continue;
    }
    if (m.index > last) pieces.push(text.slice(last, m.index));
    pieces.push(m[0]);
    last = m.index + m[0].length;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}
