export { compressBytes, decompressBytes, readHeader, DEFAULT_MAX_STREAMS, MIN_STREAM_BYTES } from './codec.js';
export type { CompressOptions, CodingStats } from './codec.js';
export { CompressedFileError, type CompressedHeader } from './container.js';
export {
  buildOnlineModel,
  checkpointHash,
  engineIdentity,
  loadCheckpointModel,
  onlineModelSpec,
  type CodingModel,
  type CodingModelSpec,
  type OnlineModelSpec,
} from './coding-model.js';
export { RangeDecoder, RangeEncoder, MAX_TOTAL } from './range-coder.js';
export { quantizedCumulative, byteAt } from './byte-distribution.js';
