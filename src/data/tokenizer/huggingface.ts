import { writeFile } from 'node:fs/promises';
import { BpeMerger, MAX_BPE_VOCAB, type MergeRule } from './bpe-merges.js';
import { compilePattern, GPT2_PATTERN } from './pretokenize.js';
import { ByteLevelTokenizer, type ByteLevelTokenizerParts } from './tokenizer.js';
import { byteLevelStringToBytes, byteToUnicodeTable, utf8Decoder, utf8Encoder } from './utf8.js';

/** End-of-document tokens tried, in order, when the caller does not name one. */
export const HF_EOS_CANDIDATES = ['<|endoftext|>', '<|end_of_text|>', '</s>', '<eos>', '<|im_end|>', '<|eot_id|>'];

export interface HuggingFaceLoadOptions {
  /** Which added token ends a document. Default: the first of HF_EOS_CANDIDATES present. */
  eosToken?: string;
  /** Named in error messages. */
  source?: string;
}

interface HfJson {
  model?: {
    type?: string;
    vocab?: Record<string, number>;
    merges?: Array<string | [string, string]>;
    ignore_merges?: boolean;
    byte_fallback?: boolean;
  };
  added_tokens?: Array<{ id: number; content: string; special?: boolean }>;
  normalizer?: HfComponent | null;
  pre_tokenizer?: HfComponent | null;
  decoder?: HfComponent | null;
}

interface HfComponent {
  type: string;
  [field: string]: unknown;
}

/**
 * A byte-level BPE tokenizer read from a Hugging Face `tokenizer.json` (GPT-2, RoBERTa, Llama 3,
 * Qwen and similar): vocab, merges, added tokens, the ByteLevel byte↔unicode alphabet, and the
 * common normalizers and pre-tokenizers. Unsupported components are reported, never ignored.
 * Round trips are exact when the file has no normalizer and no prefix space.
 */
export class HuggingFaceTokenizer extends ByteLevelTokenizer {
  readonly kind = 'huggingface' as const;

  private constructor(
    parts: ByteLevelTokenizerParts,
    private readonly original: unknown,
  ) {
    super(parts);
  }

  static fromJSON(json: unknown, options: HuggingFaceLoadOptions = {}): HuggingFaceTokenizer {
    const where = options.source ?? 'tokenizer.json';
    const fail = (message: string): never => {
      throw new Error(`${where}: ${message}`);
    };
    const doc = json as HfJson;
    const model = doc?.model;
    if (!model || typeof model !== 'object') fail('no "model" section; is this a Hugging Face tokenizer.json?');
    if (model!.type !== undefined && model!.type !== 'BPE')
      fail(`model type ${JSON.stringify(model!.type)} is not supported (only byte-level BPE)`);
    if (!model!.vocab || typeof model!.vocab !== 'object') fail('model has no "vocab"');
    if (!Array.isArray(model!.merges)) fail('model has no "merges" list');
    if (!usesByteLevel(doc.pre_tokenizer) && !usesByteLevel(doc.decoder))
      fail('not a byte-level BPE tokenizer (no ByteLevel pre-tokenizer or decoder)');

    const vocab = model!.vocab!;
    const added = doc.added_tokens ?? [];
    let vocabSize = 0;
    for (const id of Object.values(vocab)) vocabSize = Math.max(vocabSize, id + 1);
    for (const t of added) vocabSize = Math.max(vocabSize, t.id + 1);
    if (vocabSize > MAX_BPE_VOCAB)
      fail(`vocabulary of ${vocabSize} ids exceeds the supported maximum ${MAX_BPE_VOCAB}`);

    const empty = new Uint8Array(0);
    const idToBytes: Uint8Array[] = new Array(vocabSize).fill(empty);
    for (const [token, id] of Object.entries(vocab)) {
      if (!Number.isInteger(id) || id < 0) fail(`vocab entry ${JSON.stringify(token)} has invalid id ${id}`);
      const bytes = byteLevelStringToBytes(token);
      if (bytes === undefined)
        fail(`vocab entry ${JSON.stringify(token)} uses characters outside the ByteLevel alphabet`);
      idToBytes[id] = bytes!;
    }
    const specialTokens = new Map<string, number>();
    for (const t of added) {
      if (typeof t.content !== 'string' || !Number.isInteger(t.id)) fail(`malformed added token ${JSON.stringify(t)}`);
      idToBytes[t.id] = utf8Encoder.encode(t.content);
      specialTokens.set(t.content, t.id);
    }

    const byteChars = byteToUnicodeTable();
    const byteToId = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const id = vocab[byteChars[b]];
      if (id === undefined)
        fail(
          `vocab lacks the single-byte token for ` +
            `byte 0x${b.toString(16).padStart(2, '0')} (${JSON.stringify(byteChars[b])})`,
        );
      byteToId[b] = id!;
    }

    const rules: MergeRule[] = model!.merges!.map((merge, i) => {
      const [a, b] = typeof merge === 'string' ? splitMergeString(merge) : merge;
      if (a === undefined || b === undefined) return fail(`merge ${i} ${JSON.stringify(merge)} is not a pair`);
      const left = vocab[a];
      const right = vocab[b];
      const result = vocab[a + b];
      if (left === undefined || right === undefined || result === undefined)
        return fail(`merge ${i} ${JSON.stringify(merge)} uses a token missing from vocab`);
      return { left, right, result };
    });

    const eosToken = options.eosToken ?? HF_EOS_CANDIDATES.find((t) => specialTokens.has(t));
    if (eosToken === undefined || !specialTokens.has(eosToken)) {
      fail(
        options.eosToken
          ? `end-of-document token ${JSON.stringify(options.eosToken)} is not an added token`
          : `no end-of-document token found among the added tokens (tried ${HF_EOS_CANDIDATES.join(' ')}); name one ` +
              `explicitly`,
      );
    }

    const { pattern, addPrefixSpace } = readPreTokenizer(doc.pre_tokenizer ?? null, fail);
    const normalizeText = readNormalizer(doc.normalizer ?? null, fail);
    const normalize =
      normalizeText || addPrefixSpace
        ? (text: string): string => {
            const normalized = normalizeText ? normalizeText(text) : text;
            return addPrefixSpace && !normalized.startsWith(' ') ? ' ' + normalized : normalized;
          }
        : undefined;

    let wholePieceIds: Map<string, number> | undefined;
    if (model!.ignore_merges) {
      wholePieceIds = new Map();
      for (const id of Object.values(vocab)) {
        const text = utf8Decoder.decode(idToBytes[id]);
        if (text.length > 0 && !text.includes('\uFFFD')) wholePieceIds.set(text, id);
      }
    }

    return new HuggingFaceTokenizer(
      {
        vocabSize,
        eosId: specialTokens.get(eosToken!) as number,
        specialTokens,
        idToBytes,
        merger: new BpeMerger(byteToId, rules),
        pattern,
        normalize,
        wholePieceIds,
      },
      json,
    );
  }

  /** The original tokenizer.json document, unchanged. */
  toJSON(): unknown {
    return this.original;
  }

  override async save(path: string): Promise<void> {
    await writeFile(path, JSON.stringify(this.original, null, 2) + '\n');
  }
}

function splitMergeString(merge: string): [string | undefined, string | undefined] {
  const space = merge.indexOf(' ', 1); // byte-level tokens never contain a real space, but be safe at index 0
  return space < 0 ? [merge, undefined] : [merge.slice(0, space), merge.slice(space + 1)];
}

function usesByteLevel(component: HfComponent | null | undefined): boolean {
  if (!component) return false;
  if (component.type === 'ByteLevel') return true;
  const children = (component.pretokenizers ?? component.decoders) as HfComponent[] | undefined;
  return Array.isArray(children) && children.some(usesByteLevel);
}

function readPreTokenizer(
  component: HfComponent | null,
  fail: (m: string) => never,
): { pattern: RegExp | null; addPrefixSpace: boolean } {
  const steps =
    component === null ? [] : component.type === 'Sequence' ? (component.pretokenizers as HfComponent[]) : [component];
  let pattern: string | null = null;
  let addPrefixSpace = false;
  for (const step of steps) {
    let stepPattern: string | null = null;
    if (step.type === 'ByteLevel') {
      if (step.add_prefix_space === true) addPrefixSpace = true;
      if (step.use_regex !== false) stepPattern = GPT2_PATTERN;
    } else if (step.type === 'Split') {
      const p = step.pattern as { Regex?: string; String?: string } | undefined;
      if (step.behavior !== 'Isolated' || step.invert === true)
        fail(
          `Split pre-tokenizer with ` +
            `behavior ${JSON.stringify(step.behavior)}${step.invert ? ' (inverted)' : ''} is not supported`,
        );
      if (typeof p?.Regex === 'string') stepPattern = p.Regex;
      else if (typeof p?.String === 'string') stepPattern = p.String.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      else fail('Split pre-tokenizer without a pattern');
    } else {
      fail(`pre-tokenizer ${JSON.stringify(step.type)} is not supported`);
    }
    if (stepPattern !== null) {
      if (pattern !== null) fail('more than one regex pre-tokenization step is not supported');
      pattern = stepPattern;
    }
  }
  return { pattern: pattern === null ? null : compilePattern(pattern), addPrefixSpace };
}

function readNormalizer(
  component: HfComponent | null,
  fail: (m: string) => never,
): ((text: string) => string) | undefined {
  if (component === null) return undefined;
  switch (component.type) {
    case 'NFC':
    case 'NFD':
    case 'NFKC':
    case 'NFKD': {
      const form = component.type;
      return (text) => text.normalize(form);
    }
    case 'Lowercase':
      return (text) => text.toLowerCase();
    case 'Sequence': {
      const parts = (component.normalizers as HfComponent[])
        .map((c) => readNormalizer(c, fail))
        .filter((f) => f !== undefined);
      return (text) => parts.reduce((t, f) => f!(t), text);
    }
    default:
      return fail(`normalizer ${JSON.stringify(component.type)} is not supported`);
  }
}
