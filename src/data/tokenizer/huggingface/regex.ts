/**
 * Hugging Face patterns are written for Rust's `regex` and Oniguruma; this compiles them as JavaScript
 * regexes with the same meaning for the constructs tokenizer files use.
 */
import type { Fail, HfPattern } from './schema.js';

/** Unicode White_Space, which `\s` means in Rust and Oniguruma (JavaScript's `\s` adds U+FEFF and lacks U+0085). */
export const WHITE_SPACE = String.raw`\t-\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;
/** `\w` as Rust's `regex` defines it (UTS #18 Annex C); JavaScript's `\w` is ASCII only. */
export const WORD_CHARACTER = String.raw`\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}`;

const WHITE_SPACE_RE = new RegExp(`[${WHITE_SPACE}]`, 'u');
const WORD_RE = new RegExp(`[${WORD_CHARACTER}]`, 'u');

export function isWhiteSpace(ch: string): boolean {
  return WHITE_SPACE_RE.test(ch);
}

export function isWordCharacter(ch: string): boolean {
  return WORD_RE.test(ch);
}

export function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A Split/Replace pattern as a global regex; a `String` pattern matches literally. */
export function compileHfPattern(pattern: unknown, fail: Fail): RegExp {
  const p = pattern as HfPattern | undefined;
  if (typeof p?.String === 'string') return new RegExp(escapeRegex(p.String), 'gu');
  if (typeof p?.Regex === 'string') return compileRustRegex(p.Regex, fail);
  return fail(`pattern ${JSON.stringify(pattern)} is neither {"String": ...} nor {"Regex": ...}`);
}

/**
 * Rewrites the Rust/Oniguruma constructs JavaScript reads differently: `(?i:...)` groups (JavaScript in
 * Node 20 has no inline flags; each ASCII letter inside becomes a two-case class) and `\s`, `\S`, `\w`, `\W`,
 * which are Unicode-wide there.
 */
export function compileRustRegex(pattern: string, fail: Fail): RegExp {
  let out = '';
  let inClass = false;
  let caseInsensitiveDepth = 0;
  const groupStack: boolean[] = []; // per open group: whether it is a (?i: group
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === '\\') {
      const next = pattern[i + 1];
      i++;
      if (next === 's') out += inClass ? WHITE_SPACE : `[${WHITE_SPACE}]`;
      else if (next === 'w') out += inClass ? WORD_CHARACTER : `[${WORD_CHARACTER}]`;
      else if (next === 'S' || next === 'W') {
        if (inClass) fail(`regex ${JSON.stringify(pattern)}: \\${next} inside a character class is not supported`);
        out += `[^${next === 'S' ? WHITE_SPACE : WORD_CHARACTER}]`;
      } else if (next === 'p' || next === 'P' || next === 'x' || next === 'u') {
        // Keep the escape's argument (\p{L}, \x{..}, \u1234) verbatim so its letters are not case-folded.
        const braced = pattern[i + 1] === '{';
        const end = braced ? pattern.indexOf('}', i) : next === 'x' ? i + 2 : next === 'u' ? i + 4 : i + 1;
        let body = pattern.slice(i + 1, end + 1);
        if (next === 'x' && braced) body = `u${body}`; // Rust \x{1F600} is JavaScript \u{1F600}
        out += `\\${next === 'x' && braced ? '' : next}${body}`;
        i = end;
      } else out += `\\${next}`;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      out += caseInsensitiveDepth > 0 && /[a-zA-Z]/.test(ch) ? ch.toLowerCase() + ch.toUpperCase() : ch;
      continue;
    }
    if (ch === '[') {
      inClass = true;
      out += ch;
      if (pattern[i + 1] === '^') out += pattern[++i];
      if (pattern[i + 1] === ']') out += '\\' + pattern[++i]; // a leading ] is literal
    } else if (pattern.startsWith('(?i:', i)) {
      groupStack.push(true);
      caseInsensitiveDepth++;
      out += '(?:';
      i += 3;
    } else if (ch === '(') {
      groupStack.push(false);
      out += ch;
    } else if (ch === ')') {
      if (groupStack.pop()) caseInsensitiveDepth--;
      out += ch;
    } else if (caseInsensitiveDepth > 0 && /[a-zA-Z]/.test(ch)) {
      out += `[${ch.toLowerCase()}${ch.toUpperCase()}]`;
    } else out += ch;
  }
  try {
    return new RegExp(out, 'gu');
  } catch (error) {
    return fail(`regex ${JSON.stringify(pattern)} is not supported: ${(error as Error).message}`);
  }
}
