/** Hugging Face decoders: a list of token strings → text, step by step (each step maps a list to a list). */
import { compileHfPattern } from './regex.js';
import { readChildren, readCount, readString, type Fail, type HfComponent } from './schema.js';
import { byteLevelStringToBytes, utf8Decoder, utf8Encoder, concatBytes } from '../utf8.js';

export type Decoder = (tokens: string[]) => string[];

export function buildDecoder(component: HfComponent | null | undefined, fail: Fail): Decoder | null {
  if (!component) return null;
  switch (component.type) {
    case 'ByteLevel':
      return (tokens) => [utf8Decoder.decode(concatBytes(tokens.map(byteLevelTokenBytes)))];
    case 'Metaspace': {
      const replacement = readString(component, 'replacement', fail);
      const stripFirst = component.prepend_scheme !== 'never' && component.add_prefix_space !== false;
      return (tokens) =>
        tokens.map((token, i) =>
          i === 0 && stripFirst ? token.replaceAll(replacement, '') : token.replaceAll(replacement, ' '),
        );
    }
    case 'Replace': {
      const pattern = compileHfPattern(component.pattern, fail);
      const content = readString(component, 'content', fail);
      return (tokens) => tokens.map((token) => token.replace(pattern, () => content));
    }
    case 'ByteFallback':
      return byteFallback;
    case 'Fuse':
      return (tokens) => [tokens.join('')];
    case 'Strip': {
      const content = readString(component, 'content', fail);
      const start = readCount(component, 'start', fail);
      const stop = readCount(component, 'stop', fail);
      return (tokens) => tokens.map((token) => strip(token, content, start, stop));
    }
    case 'BPEDecoder': {
      const suffix = typeof component.suffix === 'string' ? component.suffix : '</w>';
      return (tokens) => tokens.map((token, i) => token.replaceAll(suffix, i === tokens.length - 1 ? '' : ' '));
    }
    case 'Sequence': {
      const steps = readChildren(component, 'decoders', fail)
        .map((c) => buildDecoder(c, fail))
        .filter((d): d is Decoder => d !== null);
      return (tokens) => steps.reduce((current, step) => step(current), tokens);
    }
    default:
      return fail(
        `decoder ${JSON.stringify(component.type)} is not supported ` +
          `(supported: ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence)`,
      );
  }
}

/** A token's bytes under the ByteLevel alphabet; a token with other characters (an added token) is its UTF-8. */
export function byteLevelTokenBytes(token: string): Uint8Array {
  return byteLevelStringToBytes(token) ?? utf8Encoder.encode(token);
}

const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

/** Runs of `<0xNN>` tokens become their UTF-8 text, or one U+FFFD per byte when the run is not valid UTF-8. */
function byteFallback(tokens: string[]): string[] {
  const out: string[] = [];
  let bytes: number[] = [];
  const flush = (): void => {
    if (bytes.length === 0) return;
    const text = strictUtf8(Uint8Array.from(bytes));
    if (text !== null) out.push(text);
    else for (let i = 0; i < bytes.length; i++) out.push('\uFFFD');
    bytes = [];
  };
  for (const token of tokens) {
    const m = BYTE_TOKEN.exec(token);
    if (m) bytes.push(parseInt(m[1], 16));
    else {
      flush();
      out.push(token);
    }
  }
  flush();
  return out;
}

const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function strictUtf8(bytes: Uint8Array): string | null {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    return null;
  }
}

function strip(token: string, content: string, start: number, stop: number): string {
  const chars = Array.from(token);
  let startCut = 0;
  while (startCut < start && startCut < chars.length && chars[startCut] === content) startCut++;
  let stopCut = chars.length;
  for (let i = 0; i < stop && stopCut > startCut && chars[stopCut - 1] === content; i++) stopCut--;
  return chars.slice(startCut, stopCut).join('');
}
