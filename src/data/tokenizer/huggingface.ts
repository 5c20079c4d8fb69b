import { writeFile } from 'node:fs/promises';
import { AddedVocabulary, readAddedTokens, type AddedToken } from './huggingface/added-tokens.js';
import { BpeModel } from './huggingface/bpe-model.js';
import { buildDecoder, byteLevelTokenBytes, type Decoder } from './huggingface/decoders.js';
import { buildNormalizer } from './huggingface/normalizers.js';
import { buildPostProcessor, type PostProcessor } from './huggingface/post-processors.js';
import { buildPreTokenizer, type BuiltPreTokenizer, type PreTokenizer } from './huggingface/pre-tokenizers.js';
import { splitByPattern } from './pretokenize.js';
import { failIn, type Fail, type HfTokenizerJson } from './huggingface/schema.js';
import type { DecodeOptions, EncodeOptions, Tokenizer } from './tokenizer.js';
import { byteToUnicodeTable, concatBytes, splitUtf8Runs, utf8Decoder, utf8Encoder } from './utf8.js';

/** End-of-document tokens tried, in order, when the caller does not name one. */
export const HF_EOS_CANDIDATES = ['<|endoftext|>', '<|end_of_text|>', '</s>', '<eos>', '<|im_end|>', '<|eot_id|>'];

export interface HuggingFaceLoadOptions {
  /** Which added token ends a document. Default: the first of HF_EOS_CANDIDATES present. */
  eosToken?: string;
  /** Named in error messages. */
  source?: string;
}

/** The stages of one tokenizer.json, built. */
interface Pipeline {
  original: HfTokenizerJson;
  added: AddedVocabulary;
  preTokenize: PreTokenizer;
  byteLevelSplit: BuiltPreTokenizer['byteLevelSplit'];
  model: BpeModel;
  /** Byte → single-byte token id, for byte-level vocabularies; null otherwise. */
  byteIds: Int32Array | null;
  postProcess: PostProcessor | null;
  decoder: Decoder | null;
}

/**
 * A tokenizer read from a Hugging Face `tokenizer.json`, encoding and decoding as the `tokenizers`
 * library does: added tokens, normalizer, pre-tokenizer, BPE model (byte-level, or SentencePiece-style
 * with Metaspace and byte fallback), post-processor and decoder. Components it does not implement are
 * reported when the file is loaded, never ignored.
 */
export class HuggingFaceTokenizer implements Tokenizer {
  readonly kind = 'huggingface' as const;
  readonly vocabSize: number;
  readonly eosId: number;
  /** Special added tokens (text → id): what `allowSpecial` lets the input name. */
  readonly specialTokens: ReadonlyMap<string, number>;
  private readonly addedById = new Map<number, AddedToken>();
  private readonly byteFallbackIds: Int32Array | null;

  private constructor(
    private readonly pipeline: Pipeline,
    eosToken: string | undefined,
    fail: Fail,
  ) {
    const { added, model } = pipeline;
    let vocabSize = model.idToToken.length;
    const specials = new Map<string, number>();
    for (const token of added.tokens) {
      vocabSize = Math.max(vocabSize, token.id + 1);
      this.addedById.set(token.id, token);
      if (token.special) specials.set(token.content, token.id);
    }
    this.vocabSize = vocabSize;
    this.specialTokens = specials;
    const addedByContent = new Map(added.tokens.map((t) => [t.content, t.id]));
    // Without a usual end-of-document name, a tokenizer with a single special token (as Andromeda writes one
    // with a custom end token) uses that.
    const eos =
      eosToken ??
      HF_EOS_CANDIDATES.find((t) => addedByContent.has(t)) ??
      (specials.size === 1 ? [...specials.keys()][0] : undefined);
    if (eos === undefined)
      fail(
        `no end-of-document token found among the added tokens (tried ${HF_EOS_CANDIDATES.join(' ')}); name one ` +
          `explicitly`,
      );
    if (!addedByContent.has(eos!)) fail(`end-of-document token ${JSON.stringify(eos)} is not an added token`);
    this.eosId = addedByContent.get(eos!)!;

    const fallback = pipeline.original.model?.byte_fallback === true ? new Int32Array(256).fill(-1) : null;
    if (fallback)
      for (let b = 0; b < 256; b++)
        fallback[b] = model.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? -1;
    this.byteFallbackIds = fallback;
  }

  static fromJSON(json: unknown, options: HuggingFaceLoadOptions = {}): HuggingFaceTokenizer {
    const fail = failIn(options.source ?? 'tokenizer.json');
    const doc = json as HfTokenizerJson;
    if (!doc?.model || typeof doc.model !== 'object')
      fail('no "model" section; is this a Hugging Face tokenizer.json?');
    const normalizer = buildNormalizer(doc.normalizer, fail);
    const { preTokenize, byteLevel, byteLevelSplit } = buildPreTokenizer(doc.pre_tokenizer, fail);
    const byteIds = byteLevel ? byteAlphabetIds(doc.model!.vocab, fail) : null;
    if (!byteLevel && doc.decoder?.type === 'ByteLevel') fail('a ByteLevel decoder needs a ByteLevel pre-tokenizer');
    const pipeline: Pipeline = {
      original: doc,
      added: new AddedVocabulary(readAddedTokens(doc.added_tokens, fail), normalizer),
      preTokenize,
      byteLevelSplit,
      model: new BpeModel(doc.model!, fail, byteIds ?? undefined),
      byteIds,
      postProcess: buildPostProcessor(doc.post_processor, fail),
      decoder: buildDecoder(doc.decoder, fail),
    };
    return new HuggingFaceTokenizer(pipeline, options.eosToken, fail);
  }

  encode(text: string, options: EncodeOptions = {}): Int32Array {
    const ids: number[] = [];
    this.encodeInto(text, options.allowSpecial === true, ids);
    return Int32Array.from(
      options.addSpecialTokens && this.pipeline.postProcess ? this.pipeline.postProcess(ids) : ids,
    );
  }

  encodeBytes(bytes: Uint8Array): Int32Array {
    const ids: number[] = [];
    for (const run of splitUtf8Runs(bytes)) {
      const slice = bytes.subarray(run.start, run.end);
      if (run.valid) this.encodeInto(utf8Decoder.decode(slice), false, ids);
      else for (const b of slice) ids.push(this.rawByteId(b));
    }
    return Int32Array.from(ids);
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) {
      const added = this.addedById.get(ids[i]);
      if (added?.special && options.skipSpecialTokens) continue;
      tokens.push(added ? this.pipeline.added.decodedText(added) : this.modelToken(ids[i]));
    }
    const { decoder } = this.pipeline;
    return decoder ? decoder(tokens).join('') : tokens.join(' ');
  }

  /** The tokens' bytes joined; for byte-level vocabularies this is exact even when the text is not valid UTF-8. */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    if (!this.pipeline.byteIds) return utf8Encoder.encode(this.decode(ids));
    return concatBytes(Array.from(ids, (id) => this.tokenBytes(id)));
  }

  /**
   * The bytes one id contributes inside a longer text: its byte-level bytes, its `<0xNN>` byte, or its text
   * with the word-boundary marker "▁" read as a space.
   */
  tokenBytes(id: number): Uint8Array {
    const added = this.addedById.get(id);
    if (added) return utf8Encoder.encode(this.pipeline.added.decodedText(added));
    const token = this.modelToken(id);
    if (this.pipeline.byteIds) return byteLevelTokenBytes(token);
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
    if (byte && this.byteFallbackIds) return Uint8Array.of(parseInt(byte[1], 16));
    return utf8Encoder.encode(token.replaceAll('▁', ' '));
  }

  /** The original tokenizer.json document, unchanged. */
  toJSON(): unknown {
    return this.pipeline.original;
  }

  async save(path: string): Promise<void> {
    await writeFile(path, JSON.stringify(this.pipeline.original) + '\n');
  }

  private encodeInto(text: string, allowSpecial: boolean, out: number[]): void {
    const { added, model, byteLevelSplit, preTokenize } = this.pipeline;
    for (const segment of added.extractAndNormalize(text, allowSpecial)) {
      if (segment.id !== undefined) {
        out.push(segment.id);
      } else if (byteLevelSplit) {
        const withPrefix =
          byteLevelSplit.addPrefixSpace && segment.text.length > 0 && !segment.text.startsWith(' ')
            ? ' ' + segment.text
            : segment.text;
        if (byteLevelSplit.regex === null) model.tokenizeText(withPrefix, out);
        else for (const piece of splitByPattern(withPrefix, byteLevelSplit.regex)) model.tokenizeText(piece, out);
      } else {
        for (const piece of preTokenize([{ text: segment.text, atStart: segment.atStart }]))
          model.tokenize(piece.text, out);
      }
    }
  }

  private modelToken(id: number): string {
    const token = Number.isInteger(id) ? this.pipeline.model.idToToken[id] : undefined;
    if (token === undefined) throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
    return token;
  }

  /** The id for a byte outside any valid UTF-8 text: its byte-level or byte-fallback token. */
  private rawByteId(byte: number): number {
    const id = this.pipeline.byteIds?.[byte] ?? this.byteFallbackIds?.[byte] ?? -1;
    if (id < 0)
      throw new Error(
        `byte 0x${byte.toString(16).padStart(2, '0')} is not valid UTF-8 and this tokenizer has no byte-level or ` +
          `byte-fallback token for it`,
      );
    return id;
  }
}

/** Each byte's single-byte token id; a byte-level vocabulary must spell every byte, or some text has no ids. */
function byteAlphabetIds(vocab: Record<string, number> | undefined, fail: (message: string) => never): Int32Array {
  if (!vocab || typeof vocab !== 'object') return fail('model has no "vocab"');
  return Int32Array.from(byteToUnicodeTable(), (ch, b) => {
    const id = vocab[ch];
    if (id === undefined)
      fail(`vocab lacks the single-byte token for byte 0x${b.toString(16).padStart(2, '0')} (${JSON.stringify(ch)})`);
    return id;
  });
}
