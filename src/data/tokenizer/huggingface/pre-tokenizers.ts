/** Hugging Face pre-tokenizers: each cuts the pieces it is given into smaller pieces for the model. */
import { GPT2_PATTERN } from '../pretokenize.js';
import { byteToUnicodeTable, utf8Encoder } from '../utf8.js';
import { compileHfPattern, compileRustRegex, WHITE_SPACE, WORD_CHARACTER } from './regex.js';
import { readBoolean, readChildren, readString, type Fail, type HfComponent } from './schema.js';

/** A stretch of normalized text; `atStart` is true when it begins at the start of the input. */
export interface Piece {
  text: string;
  atStart: boolean;
}

export type PreTokenizer = (pieces: Piece[]) => Piece[];

/** How the matches of a Split pattern join their neighbours (Hugging Face `SplitDelimiterBehavior`). */
type SplitBehavior = 'Removed' | 'Isolated' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const SPLIT_BEHAVIORS: readonly SplitBehavior[] = [
  'Removed',
  'Isolated',
  'MergedWithPrevious',
  'MergedWithNext',
  'Contiguous',
];

interface Segment {
  start: number;
  end: number;
  isMatch: boolean;
}

const BYTE_CHARS = byteToUnicodeTable();

export interface BuiltPreTokenizer {
  preTokenize: PreTokenizer;
  /** True when a ByteLevel step maps pieces to the byte alphabet (the model's vocabulary is byte-level). */
  byteLevel: boolean;
  /**
   * Set when the whole chain is "cut with one regex, keep every piece, map to bytes" (GPT-2, Llama 3, Qwen):
   * the tokenizer can then skip building byte-level strings and run the merges on UTF-8 bytes directly.
   */
  byteLevelSplit?: { regex: RegExp | null; addPrefixSpace: boolean };
}

export function buildPreTokenizer(component: HfComponent | null | undefined, fail: Fail): BuiltPreTokenizer {
  if (!component) return { preTokenize: (pieces) => pieces, byteLevel: false };
  const steps = component.type === 'Sequence' ? readChildren(component, 'pretokenizers', fail) : [component];
  const built = steps.map((step) => buildStep(step, fail));
  const byteLevelAt = steps.findIndex((s) => s.type === 'ByteLevel');
  if (byteLevelAt >= 0 && byteLevelAt !== steps.length - 1)
    fail('a ByteLevel pre-tokenizer followed by other pre-tokenizers is not supported');
  return {
    preTokenize: (pieces) => built.reduce((current, step) => step(current), pieces),
    byteLevel: byteLevelAt >= 0,
    byteLevelSplit: byteLevelAt >= 0 ? plainByteLevelSplit(steps, fail) : undefined,
  };
}

function plainByteLevelSplit(steps: HfComponent[], fail: Fail): BuiltPreTokenizer['byteLevelSplit'] {
  const byteLevel = steps[steps.length - 1];
  const addPrefixSpace = readBoolean(byteLevel, 'add_prefix_space', true, fail);
  const useRegex = readBoolean(byteLevel, 'use_regex', true, fail);
  if (steps.length === 1) return { regex: useRegex ? compileRustRegex(GPT2_PATTERN, fail) : null, addPrefixSpace };
  const split = steps[0];
  const isolated = split.type === 'Split' && split.behavior === 'Isolated' && split.invert !== true;
  if (steps.length !== 2 || !isolated || useRegex || addPrefixSpace) return undefined;
  return { regex: compileHfPattern(split.pattern, fail), addPrefixSpace: false };
}

function buildStep(step: HfComponent, fail: Fail): PreTokenizer {
  switch (step.type) {
    case 'ByteLevel': {
      const addPrefixSpace = readBoolean(step, 'add_prefix_space', true, fail);
      const split = readBoolean(step, 'use_regex', true, fail) ? compileRustRegex(GPT2_PATTERN, fail) : null;
      return eachPiece((piece) => {
        const text = addPrefixSpace && !piece.text.startsWith(' ') ? ' ' + piece.text : piece.text;
        const parts = split
          ? splitPiece({ text, atStart: piece.atStart }, split, 'Isolated', false)
          : [{ ...piece, text }];
        return parts.map((p) => ({ text: toByteLevel(p.text), atStart: p.atStart }));
      });
    }
    case 'Split': {
      const regex = compileHfPattern(step.pattern, fail);
      const behavior = readBehavior(step, fail);
      const invert = readBoolean(step, 'invert', false, fail);
      return eachPiece((piece) => splitPiece(piece, regex, behavior, invert));
    }
    case 'Metaspace': {
      const replacement = readString(step, 'replacement', fail);
      const scheme = readPrependScheme(step, fail);
      const split = readBoolean(step, 'split', true, fail);
      const splitter = new RegExp(replacement.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gu');
      return eachPiece((piece) => {
        let text = piece.text.replaceAll(' ', replacement);
        const prepend = scheme === 'always' || (scheme === 'first' && piece.atStart);
        if (prepend && text.length > 0 && !text.startsWith(replacement)) text = replacement + text;
        const replaced = { text, atStart: piece.atStart };
        return split ? splitPiece(replaced, splitter, 'MergedWithNext', false) : [replaced];
      });
    }
    case 'Whitespace': {
      const words = new RegExp(`[${WORD_CHARACTER}]+|[^${WORD_CHARACTER}${WHITE_SPACE}]+`, 'gu');
      return eachPiece((piece) => splitPiece(piece, words, 'Removed', true));
    }
    case 'WhitespaceSplit': {
      const spaces = new RegExp(`[${WHITE_SPACE}]`, 'gu');
      return eachPiece((piece) => splitPiece(piece, spaces, 'Removed', false));
    }
    case 'Digits': {
      const individual = readBoolean(step, 'individual_digits', false, fail);
      return eachPiece((piece) => splitPiece(piece, /\p{N}/gu, individual ? 'Isolated' : 'Contiguous', false));
    }
    case 'Punctuation': {
      const behavior = step.behavior === undefined ? 'Isolated' : readBehavior(step, fail);
      return eachPiece((piece) => splitPiece(piece, /[\p{P}!-/:-@[-`{-~]/gu, behavior, false));
    }
    case 'BertPreTokenizer': {
      const spaces = new RegExp(`[${WHITE_SPACE}]`, 'gu');
      const punctuation = /[\p{P}!-/:-@[-`{-~]/gu;
      return eachPiece((piece) =>
        splitPiece(piece, spaces, 'Removed', false).flatMap((p) => splitPiece(p, punctuation, 'Isolated', false)),
      );
    }
    default:
      return fail(
        `pre-tokenizer ${JSON.stringify(step.type)} is not supported (supported: ByteLevel, Split, Metaspace, ` +
          `Whitespace, WhitespaceSplit, Digits, Punctuation, BertPreTokenizer, Sequence)`,
      );
  }
}

function eachPiece(split: (piece: Piece) => Piece[]): PreTokenizer {
  return (pieces) => pieces.flatMap(split);
}

function readBehavior(step: HfComponent, fail: Fail): SplitBehavior {
  const behavior = step.behavior as SplitBehavior;
  if (!SPLIT_BEHAVIORS.includes(behavior))
    fail(`${step.type} behavior ${JSON.stringify(step.behavior)} is not one of ${SPLIT_BEHAVIORS.join(', ')}`);
  return behavior;
}

function readPrependScheme(step: HfComponent, fail: Fail): 'always' | 'first' | 'never' {
  // Files written before prepend_scheme existed say add_prefix_space instead.
  if (step.prepend_scheme === undefined) return readBoolean(step, 'add_prefix_space', true, fail) ? 'always' : 'never';
  const scheme = step.prepend_scheme;
  if (scheme !== 'always' && scheme !== 'first' && scheme !== 'never')
    fail(`Metaspace prepend_scheme ${JSON.stringify(scheme)} is not one of always, first, never`);
  return scheme as 'always' | 'first' | 'never';
}

/** Hugging Face `NormalizedString::split`: cut at the regex's matches, then join or drop them per `behavior`. */
export function splitPiece(piece: Piece, regex: RegExp, behavior: SplitBehavior, invert: boolean): Piece[] {
  const { text } = piece;
  if (text.length === 0) return [];
  const segments: Segment[] = [];
  let last = 0;
  regex.lastIndex = 0;
  for (let m = regex.exec(text); m !== null; m = regex.exec(text)) {
    if (m[0].length === 0) {
      regex.lastIndex++;
      continue;
    }
    if (m.index > last) segments.push({ start: last, end: m.index, isMatch: invert });
    segments.push({ start: m.index, end: m.index + m[0].length, isMatch: !invert });
    last = m.index + m[0].length;
  }
  if (last < text.length) segments.push({ start: last, end: text.length, isMatch: invert });

  let kept: Segment[];
  switch (behavior) {
    case 'Removed':
      kept = segments.filter((s) => !s.isMatch);
      break;
    case 'Isolated':
      kept = segments;
      break;
    case 'MergedWithPrevious':
      kept = mergeForward(segments, (s, previousMatched) => s.isMatch && !previousMatched);
      break;
    case 'Contiguous':
      kept = mergeForward(segments, (s, previousMatched) => s.isMatch === previousMatched);
      break;
    case 'MergedWithNext': {
      kept = [];
      let nextMatched = false;
      for (let i = segments.length - 1; i >= 0; i--) {
        const s = segments[i];
        const first = kept[kept.length - 1];
        if (s.isMatch && !nextMatched && first) first.start = s.start;
        else kept.push({ ...s });
        nextMatched = s.isMatch;
      }
      kept.reverse();
      break;
    }
  }
  return kept
    .filter((s) => s.end > s.start)
    .map((s) => ({ text: text.slice(s.start, s.end), atStart: piece.atStart && s.start === 0 }));
}

/** Joins a segment onto the one before it when `joins` says so (MergedWithPrevious, Contiguous). */
function mergeForward(segments: Segment[], joins: (s: Segment, previousMatched: boolean) => boolean): Segment[] {
  const out: Segment[] = [];
  let previousMatched = false;
  for (const s of segments) {
    const previous = out[out.length - 1];
    if (joins(s, previousMatched) && previous) previous.end = s.end;
    else out.push({ ...s });
    previousMatched = s.isMatch;
  }
  return out;
}

function toByteLevel(text: string): string {
  let out = '';
  for (const b of utf8Encoder.encode(text)) out += BYTE_CHARS[b];
  return out;
}
