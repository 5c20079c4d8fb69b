/** Regex pre-tokenization: text is cut into pieces (words, numbers, punctuation, spaces) before BPE. */

/** GPT-2's pattern: contractions, optional-space + letters/numbers/other, and whitespace runs. */
export const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;

/**
 * Compiles a pre-tokenizer pattern written for the Rust/Oniguruma regex dialects used by
 * Hugging Face and tiktoken. JavaScript (Node 20) lacks inline flag groups, so `(?i:...)`
 * is rewritten by spelling each ASCII letter inside it as a two-case class (`s` → `[sS]`).
 */
export function compilePattern(pattern: string): RegExp {
  try {
    return new RegExp(expandCaseInsensitiveGroups(pattern), 'gu');
  } catch (error) {
    throw new Error(`unsupported pre-tokenizer regex ${JSON.stringify(pattern)}: ${(error as Error).message}`);
  }
}

function expandCaseInsensitiveGroups(pattern: string): string {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    if (pattern.startsWith('(?i:', i)) {
      let depth = 1;
      let j = i + 4;
      let body = '';
      let inClass = false;
      while (j < pattern.length && depth > 0) {
        const ch = pattern[j];
        if (ch === '\\') {
          body += pattern.slice(j, j + 2);
          j += 2;
          continue;
        }
        if (inClass) {
          if (ch === ']') inClass = false;
          body += /[a-zA-Z]/.test(ch) ? ch.toLowerCase() + ch.toUpperCase() : ch;
        } else if (ch === '[') {
          inClass = true;
          body += ch;
        } else if (ch === '(') {
          depth++;
          body += ch;
        } else if (ch === ')') {
          depth--;
          if (depth > 0) body += ch;
        } else {
          body += /[a-zA-Z]/.test(ch) ? `[${ch.toLowerCase()}${ch.toUpperCase()}]` : ch;
        }
        j++;
      }
      if (depth !== 0) throw new Error(`unbalanced (?i: group in pre-tokenizer regex ${JSON.stringify(pattern)}`);
      out += `(?:${body})`;
      i = j;
    } else if (pattern[i] === '\\') {
      out += pattern.slice(i, i + 2);
      i += 2;
    } else {
      out += pattern[i++];
    }
  }
  return out;
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
