/**
 * Hugging Face added tokens: strings cut out of the input before normalization (or, for `normalized`
 * ones, out of the normalized text) and mapped straight to their ids, with the single_word, lstrip
 * and rstrip rules of `tokenizers`' AddedVocabulary.
 */
import { escapeRegex, isWhiteSpace, isWordCharacter } from './regex.js';
import type { Fail, HfAddedToken } from './schema.js';
import type { Normalizer } from './normalizers.js';

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  singleWord: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
}

/** A stretch of text, or an added token found in it (`id` set). `start` is its offset in the text searched. */
export interface Segment {
  text: string;
  start: number;
  id?: number;
}

/** Finds added tokens leftmost-longest (as Aho-Corasick with MatchKind::LeftmostLongest does). */
class TokenMatcher {
  private readonly regex: RegExp | null;
  private readonly byText = new Map<string, AddedToken>();

  constructor(tokens: readonly AddedToken[], textOf: (t: AddedToken) => string) {
    for (const t of tokens) {
      const text = textOf(t);
      if (text.length > 0 && !this.byText.has(text)) this.byText.set(text, t);
    }
    const alternatives = [...this.byText.keys()].sort((a, b) => b.length - a.length).map(escapeRegex);
    this.regex = alternatives.length > 0 ? new RegExp(alternatives.join('|'), 'gu') : null;
  }

  split(text: string): Segment[] {
    if (this.regex === null || text.length === 0) return [{ text, start: 0 }];
    const out: Segment[] = [];
    let startOffset = 0;
    this.regex.lastIndex = 0;
    for (let m = this.regex.exec(text); m !== null; m = this.regex.exec(text)) {
      const token = this.byText.get(m[0])!;
      let start = m.index;
      let stop = m.index + m[0].length;
      if (token.singleWord) {
        const wordBefore = start > 0 && isWordCharacter(lastCodePoint(text, start));
        const wordAfter = stop < text.length && isWordCharacter(String.fromCodePoint(text.codePointAt(stop)!));
        if (wordBefore || wordAfter) continue;
      }
      if (token.lstrip) {
        let newStart = start;
        while (newStart > 0 && isWhiteSpace(lastCodePoint(text, newStart)))
          newStart -= lastCodePoint(text, newStart).length;
        start = Math.max(newStart, startOffset);
      }
      if (token.rstrip) {
        while (stop < text.length && isWhiteSpace(String.fromCodePoint(text.codePointAt(stop)!)))
          stop += String.fromCodePoint(text.codePointAt(stop)!).length;
      }
      if (startOffset < start) out.push({ text: text.slice(startOffset, start), start: startOffset });
      out.push({ text: text.slice(start, stop), start, id: token.id });
      startOffset = stop;
    }
    if (startOffset < text.length) out.push({ text: text.slice(startOffset), start: startOffset });
    return out;
  }
}

function lastCodePoint(text: string, end: number): string {
  const low = text.charCodeAt(end - 1);
  if (end >= 2 && low >= 0xdc00 && low <= 0xdfff) {
    const high = text.charCodeAt(end - 2);
    if (high >= 0xd800 && high <= 0xdbff) return text.slice(end - 2, end);
  }
  return text[end - 1];
}

export function readAddedTokens(list: unknown, fail: Fail): AddedToken[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) return fail('"added_tokens" must be a list');
  return (list as HfAddedToken[]).map((t, i) => {
    if (typeof t?.content !== 'string' || !Number.isInteger(t.id) || t.id < 0)
      fail(`added token ${i} ${JSON.stringify(t)} needs a string "content" and an id ≥ 0`);
    const special = t.special === true;
    return {
      id: t.id,
      content: t.content,
      special,
      singleWord: t.single_word === true,
      lstrip: t.lstrip === true,
      rstrip: t.rstrip === true,
      normalized: t.normalized ?? !special,
    };
  });
}

/**
 * The two-pass split of `tokenizers`: tokens marked `normalized: false` are matched in the raw text,
 * the rest in each remaining stretch after it is normalized. Special tokens take part only when
 * `withSpecial` is true (otherwise they are ordinary text).
 */
export class AddedVocabulary {
  private readonly matchers: Record<'withSpecial' | 'withoutSpecial', { raw: TokenMatcher; normalized: TokenMatcher }>;

  constructor(
    readonly tokens: readonly AddedToken[],
    private readonly normalizer: Normalizer | null,
  ) {
    const build = (include: (t: AddedToken) => boolean) => ({
      raw: new TokenMatcher(
        tokens.filter((t) => include(t) && !t.normalized),
        (t) => t.content,
      ),
      normalized: new TokenMatcher(
        tokens.filter((t) => include(t) && t.normalized),
        (t) => (normalizer ? normalizer(t.content) : t.content),
      ),
    });
    this.matchers = { withSpecial: build(() => true), withoutSpecial: build((t) => !t.special) };
  }

  /** The text a token stands for when decoding: `tokenizers` keeps normalized tokens in their normalized form. */
  decodedText(token: AddedToken): string {
    return token.normalized && this.normalizer ? this.normalizer(token.content) : token.content;
  }

  /** Cuts `text` into added tokens and normalized stretches; `atStart` marks a stretch at the input's start. */
  extractAndNormalize(text: string, withSpecial: boolean): Array<Segment & { atStart: boolean }> {
    const { raw, normalized } = this.matchers[withSpecial ? 'withSpecial' : 'withoutSpecial'];
    const out: Array<Segment & { atStart: boolean }> = [];
    for (const segment of raw.split(text)) {
      if (segment.id !== undefined) {
        out.push({ ...segment, atStart: segment.start === 0 });
        continue;
      }
      const normalizedText = this.normalizer ? this.normalizer(segment.text) : segment.text;
      for (const inner of normalized.split(normalizedText))
        out.push({ ...inner, atStart: segment.start === 0 && inner.start === 0 });
    }
    return out;
  }
}
