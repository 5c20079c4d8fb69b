/**
 * Retrieval prompts of a chosen length with a fact hidden at a chosen depth, asked for at the end:
 *  - passkey (Mohtashami & Jaggi, "Landmark Attention"): a 5-digit key inside repeated filler sentences;
 *  - needle in a haystack (RULER's single-needle form): "one of the special magic numbers for <word> is:
 *    <7 digits>" inside real text.
 * The prompt ends where the answer begins; a model passes when its greedy continuation is the number.
 */
import type { Tokenizer } from '../data/tokenizer/tokenizer.js';
import { Rng } from '../data/random.js';

export type RetrievalTask = 'passkey' | 'needle';

export interface RetrievalPrompt {
  readonly task: RetrievalTask;
  readonly tokens: Int32Array;
  /** The number the continuation must give. */
  readonly answer: string;
  /** Asked-for depth in [0, 1]: the share of the filler placed before the fact. */
  readonly depth: number;
  /** Token index where the fact starts. */
  readonly factPosition: number;
}

export const PASSKEY_INTRO =
  'There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. ' +
  'I will quiz you about the important information there.\n';
export const PASSKEY_FILLER =
  'The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ';
const passkeyFact = (key: string): string => `The pass key is ${key}. Remember it. ${key} is the pass key. `;
const PASSKEY_QUESTION = '\nWhat is the pass key? The pass key is';

const NEEDLE_KEYS = [
  'harbor',
  'lantern',
  'orchard',
  'compass',
  'meadow',
  'granite',
  'falcon',
  'velvet',
  'thimble',
  'quarry',
  'saffron',
  'glacier',
  'tundra',
  'beacon',
  'marble',
  'juniper',
];
const needleFact = (key: string, value: string): string => `One of the special magic numbers for ${key} is: ${value}. `;
const needleQuestion = (key: string): string =>
  `\nWhat is the special magic number for ${key} mentioned in the provided text? ` +
  `The special magic number for ${key} mentioned in the provided text is`;

export interface RetrievalPromptOptions {
  readonly tokenizer: Tokenizer;
  /** Prompt length in tokens: the prompt is as long as whole filler sentences allow, never longer. */
  readonly length: number;
  /** Where the fact goes, in [0, 1] of the filler. */
  readonly depth: number;
  /** Seed of the number (and the needle's key word). */
  readonly seed: number;
}

/** A random number of `digits` digits without a leading zero. */
export function randomNumber(rng: Rng, digits: number): string {
  let s = String(1 + rng.nextInt(9));
  while (s.length < digits) s += String(rng.nextInt(10));
  return s;
}

/** The passkey prompt: intro, filler sentences with the key at `depth`, the question. */
export function passkeyPrompt(o: RetrievalPromptOptions): RetrievalPrompt {
  const key = randomNumber(new Rng(`passkey:${o.seed}`), 5);
  const sentences = [PASSKEY_FILLER];
  return assemble('passkey', o, PASSKEY_INTRO, sentences, passkeyFact(key), PASSKEY_QUESTION, key);
}

/**
 * The needle prompt: `haystack` (real text, cut into sentences and repeated if short) with the needle at
 * `depth`, then the question.
 */
export function needlePrompt(o: RetrievalPromptOptions & { readonly haystack: string }): RetrievalPrompt {
  const rng = new Rng(`needle:${o.seed}`);
  const key = NEEDLE_KEYS[rng.nextInt(NEEDLE_KEYS.length)]!;
  const value = randomNumber(rng, 7);
  const sentences = splitSentences(o.haystack);
  if (sentences.length === 0) throw new RangeError('needlePrompt: the haystack text is empty');
  return assemble('needle', o, '', sentences, needleFact(key, value), needleQuestion(key), value);
}

/** Text cut after each sentence end (., ! or ? followed by white space), white space kept with the sentence. */
export function splitSentences(text: string): string[] {
  return text.split(/(?<=[.!?]\s+)/).filter((s) => s.trim().length > 0);
}

function assemble(
  task: RetrievalTask,
  o: RetrievalPromptOptions,
  intro: string,
  fillerSentences: readonly string[],
  fact: string,
  question: string,
  answer: string,
): RetrievalPrompt {
  if (!(o.depth >= 0 && o.depth <= 1)) throw new RangeError(`${task} prompt: depth must be in [0, 1], got ${o.depth}`);
  const encode = (s: string): Int32Array => o.tokenizer.encode(s);
  const introTokens = encode(intro);
  const factTokens = encode(fact);
  const questionTokens = encode(question);
  const fixed = introTokens.length + factTokens.length + questionTokens.length;
  const budget = o.length - fixed;
  if (budget < 0)
    throw new RangeError(
      `${task} prompt: length ${o.length} is shorter than the prompt without filler (${fixed} tokens)`,
    );
  const filler: Int32Array[] = [];
  let fillerLength = 0;
  for (let i = 0; ; i++) {
    const sentence = encode(fillerSentences[i % fillerSentences.length]!);
    if (sentence.length === 0 || fillerLength + sentence.length > budget) break;
    filler.push(sentence);
    fillerLength += sentence.length;
  }
  // The fact goes between whole sentences, at the boundary nearest the asked-for depth.
  let before = 0;
  let bestIndex = 0;
  let bestDistance = Infinity;
  for (let i = 0, at = 0; i <= filler.length; at += filler[i]?.length ?? 0, i++) {
    const distance = Math.abs(at - o.depth * fillerLength);
    if (distance < bestDistance) {
      bestDistance = distance;
      bestIndex = i;
      before = at;
    }
  }
  const parts = [introTokens, ...filler.slice(0, bestIndex), factTokens, ...filler.slice(bestIndex), questionTokens];
  const tokens = new Int32Array(fixed + fillerLength);
  let offset = 0;
  for (const part of parts) {
    tokens.set(part, offset);
    offset += part.length;
  }
  return { task, tokens, answer, depth: o.depth, factPosition: introTokens.length + before };
}

/**
 * Whether a continuation gives the number: after leading white space, the answer's digits, then no further
 * digit (so "48291." passes and "482910" does not).
 */
export function isCorrectAnswer(continuation: string, answer: string): boolean {
  const text = continuation.replace(/^\s+/, '');
  return text.startsWith(answer) && !/^\d/.test(text.slice(answer.length));
}
