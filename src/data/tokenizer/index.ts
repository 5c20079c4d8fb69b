export type { Tokenizer, EncodeOptions, DecodeOptions } from './tokenizer.js';
export { DEFAULT_EOS_TOKEN } from './tokenizer.js';
export { ByteTokenizer, type ByteTokenizerOptions } from './byte.js';
export { BpeTokenizer, type BpeTokenizerOptions } from './bpe.js';
export { trainBpe, type BpeTrainOptions } from './bpe-train.js';
export { HuggingFaceTokenizer, HF_EOS_CANDIDATES, type HuggingFaceLoadOptions } from './huggingface.js';
export { loadTokenizer, tokenizerFromJSON } from './load.js';
export { GPT2_PATTERN } from './pretokenize.js';
