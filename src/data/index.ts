/** The data pipeline: sources → tokenizers → token shards → packed, mixed, resumable batches. */
export * from './tokenizer/index.js';
export {
  readDocuments,
  readTextFile,
  readJsonlFile,
  listInputFiles,
  readInputFile,
  type Document,
  type InputFile,
  type ReadOptions,
} from './sources.js';
export {
  TokenShard,
  TokenShardWriter,
  ShardSequence,
  dtypeForVocab,
  SHARD_MAGIC,
  SHARD_VERSION,
  type ShardHeader,
  type TokenDType,
} from './shards.js';
export {
  TokenDataset,
  SplitWriter,
  readDatasetManifest,
  writeDatasetManifest,
  type DatasetManifest,
  type SplitManifest,
} from './dataset.js';
export { ArrayTokenSource, ConcatTokenSource, type TokenSource } from './token-source.js';
export {
  makeBatch,
  fillRowMetadata,
  packDocuments,
  sequentialBatches,
  tokenizeToArray,
  rowCount,
  type Batch,
  type PackingOptions,
} from './packing.js';
export {
  MixtureLoader,
  type MixtureSource,
  type MixtureLoaderOptions,
  type MixtureLoaderState,
  type MixtureBatch,
} from './mixture.js';
export { bitsPerByte, unigramCosts, unigramCrossEntropy } from './loss-units.js';
export {
  defaultCorpusDir,
  defaultCorpusDocuments,
  defaultCorpusManifest,
  type CorpusDocument,
  type DefaultCorpusQuery,
} from './default-corpus.js';
export { tokenizeToDataset, resolveTokenizer, isHeldOut, type TokenizeDatasetOptions } from './tokenize-dataset.js';
export {
  TrainingData,
  openTrainingData,
  defaultCorpusTrainingData,
  type DatasetSpec,
  type LoaderSettings,
} from './training-data.js';
export { Rng, hashString32, randomPermutation, type RngState } from './random.js';
export { ProgressBar } from './progress-bar.js';
