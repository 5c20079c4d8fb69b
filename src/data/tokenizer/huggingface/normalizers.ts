/** Hugging Face normalizers: text → text, applied to each stretch of input between added tokens. */
import { compileHfPattern, isWhiteSpace } from './regex.js';
import { readBoolean, readChildren, readString, type Fail, type HfComponent } from './schema.js';
import { byteToUnicodeTable, utf8Encoder } from '../utf8.js';

export type Normalizer = (text: string) => string;

export function buildNormalizer(component: HfComponent | null | undefined, fail: Fail): Normalizer | null {
  if (!component) return null;
  switch (component.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = component.type;
      return (text) => text.normalize(form);
    }
    case 'Lowercase':
      return lowercaseEachCharacter;
    case 'Strip': {
      const left = readBoolean(component, 'strip_left', false, fail);
      const right = readBoolean(component, 'strip_right', false, fail);
      return (text) => stripWhiteSpace(text, left, right);
    }
    case 'StripAccents':
      // Removes combining marks; like Hugging Face, meaningful after NFD/NFKD.
      return (text) => text.replace(/\p{Mn}/gu, '');
    case 'Prepend': {
      const prefix = readString(component, 'prepend', fail);
      return (text) => (text.length > 0 ? prefix + text : text);
    }
    case 'Append': {
      const suffix = readString(component, 'append', fail);
      return (text) => (text.length > 0 ? text + suffix : text);
    }
    case 'Replace': {
      const pattern = compileHfPattern(component.pattern, fail);
      const content = readString(component, 'content', fail);
      return (text) => text.replace(pattern, () => content);
    }
    case 'ByteLevel': {
      const table = byteToUnicodeTable();
      return (text) => Array.from(utf8Encoder.encode(text), (b) => table[b]).join('');
    }
    case 'Sequence': {
      const steps = readChildren(component, 'normalizers', fail)
        .map((c) => buildNormalizer(c, fail))
        .filter((n): n is Normalizer => n !== null);
      return (text) => steps.reduce((t, step) => step(t), text);
    }
    default:
      return fail(
        `normalizer ${JSON.stringify(component.type)} is not supported ` +
          `(supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Prepend, Append, Replace, ByteLevel, ` +
          `Sequence)`,
      );
  }
}

/**
 * Lowercases one code point at a time, as `tokenizers` does (Rust `char::to_lowercase`): unlike
 * `String.prototype.toLowerCase` this has no word-final sigma rule, so "ΣΑΣ" becomes "σασ".
 */
function lowercaseEachCharacter(text: string): string {
  let out = '';
  for (const ch of text) out += ch === 'Σ' ? 'σ' : ch.toLowerCase();
  return out;
}

function stripWhiteSpace(text: string, left: boolean, right: boolean): string {
  const chars = Array.from(text);
  let start = 0;
  let end = chars.length;
  if (left) while (start < end && isWhiteSpace(chars[start])) start++;
  if (right) while (end > start && isWhiteSpace(chars[end - 1])) end--;
  return start === 0 && end === chars.length ? text : chars.slice(start, end).join('');
}
