// The native kernel ABI, declared once. scripts/generate-abi.mjs writes from this list:
//   native/abi/generated/kernels.h               the C++ prototypes, one list for both engines (#if blocks for
//                                                what one engine alone has), in the namespace ANDROMEDA_ENGINE_NS
//   native/abi/generated/kernel_bindings.inc     the N-API glue of both engines: parse and check every argument,
//                                                then call; native/{cpu,cuda}/binding_kernels.cc include it
//   src/engine/native-abi.ts                     the TypeScript interfaces and the kernel-name list
// A kernel is its JavaScript name, the engines that have it, the C++ function it calls, and its ordered
// parameters. JavaScript passes the parameters in this order; C++ receives them in the same order, except
// that parameters marked `into: 'S'` are gathered into one struct S passed where the first of them stands,
// and `ints` with `rank` are followed by their length. A buffer travels as two JavaScript numbers, its
// handle and its element offset (`x`, `xOffset`); handle 0 is "no buffer" (only for `optional` ones).
//
// `method` names the Engine method that runs the kernel when it differs (false: none; the profiler wraps these).
//
// Parameter kinds:
//   enum    an int code below `ENUMS[of].count`                      dtype   a DType code (0..4)
//   int     a non-negative safe integer (`max` caps it)               signed  a safe integer
//   float   any number (NaN and ±Infinity included; with `orNull`, null gives that value)
//   seed    an integer in [0, 2^53)
//   choice  a string among `names` (undefined: the first)
//   flag    a boolean                                                 ints    an array of safe integers
//   f32s / f64s  a Float32Array / Float64Array of at least `length` values, or null when `optional`
//   buffer  elements of `elem` (a dtype parameter, 'int32', 'float32', or 'stats:<dtype param>': float64
//           for float64, else float32) over `extent`: an expression of the integer parameters, or
//           { strided: [shape, strides] } or { matrix: [rows, cols, ld, batchStride, batch] }. `values`
//           bounds the int32 values the kernel reads through (checked where buffers are host memory); such
//           buffers, and those marked `disjoint`, may not share bytes with an output of the same call.
//   derived an int64 the glue computes from `value` and passes to C++ (no JavaScript argument)
//   object  named fields read from one JavaScript object (TypeScript: `type` names its interface);
//   list    an array of such objects (C++: pointer, count).
//
// Adding a kernel: append its entry to KERNELS below, run `npm run abi:generate`, implement the C++ function
// the generated header now declares (in each engine the entry names), and call the new binding from the Engine
// method in src/engine (native-engine.ts when both engines have it). `npm test` fails while the generated
// files are stale (scripts/generate-abi.mjs --check), and the fuzz test (tests/engine/native-fuzz.test.ts)
// drives every CPU kernel of this list with adversarial arguments.
//
// Expressions may use + * / ( ) ?: the parameters by name, has(buffer or array) and rowsOf(buffer, width)
// (the whole rows a buffer holds past its offset); `requires` adds checks, written as C++ conditions.

export const ENUMS = {
  dtype: { count: 5, values: ['float32', 'float64', 'bfloat16', 'float16', 'int32'] },
  unaryOp: { count: 18 },
  unaryGradOp: { count: 6 },
  binaryOp: { count: 10 },
  reduceOp: { count: 3 },
  attentionPath: { count: 3, values: ['auto', 'tiled', 'decode'] },
};

const BOTH = ['cpu', 'cuda'];
const CPU = ['cpu'];
const CUDA = ['cuda'];

// ---- parameter builders ----
const dtype = (name = 'dtype', extra = {}) => ({ name, kind: 'dtype', ...extra });
const code = (name, of, extra = {}) => ({ name, kind: 'enum', of, ...extra });
const int = (name, extra = {}) => ({ name, kind: 'int', ...extra });
const int32 = (name, extra = {}) => ({ name, kind: 'int', ctype: 'int', max: 2147483647, ...extra });
const signed = (name, extra = {}) => ({ name, kind: 'signed', ...extra });
const float = (name, extra = {}) => ({ name, kind: 'float', ...extra });
const seed = (name) => ({ name, kind: 'seed' });
const flag = (name, extra = {}) => ({ name, kind: 'flag', ...extra });
const ints = (name, extra = {}) => ({ name, kind: 'ints', ...extra });
/** A buffer read by the kernel. */
const input = (name, elem, extent, extra = {}) => ({ name, kind: 'buffer', elem, extent, write: false, ...extra });
/** A buffer the kernel writes (and may read). */
const output = (name, elem, extent, extra = {}) => ({ name, kind: 'buffer', elem, extent, write: true, ...extra });
const optional = { optional: true };
/** A buffer a host-side function only tests for presence (handle 0 or not): never resolved nor read. */
const presence = (name, elem, extent, extra = {}) => ({ ...input(name, elem, extent, extra), presenceOnly: true });
/** A string among `names` (undefined: the first), passed to C++ as its index cast to `cast`. */
const choice = (name, names, extra = {}) => ({ name, kind: 'choice', names, ...extra });

// Which CUDA attention kernels and transform a call uses (CudaAttentionOptions in src/engine/cuda-attention.ts).
const attentionOptions = {
  name: 'options',
  kind: 'object',
  type: 'AttentionChoices',
  fields: [
    choice('path', ['auto', 'tiled', 'decode'], { into: 'AttentionChoices', cast: 'AttentionPath' }),
    choice('forwardKernel', ['auto', 'mma', 'hopper'], {
      into: 'AttentionChoices',
      cast: 'attention::KernelRequest',
      field: 'forward',
    }),
    choice('backwardKernel', ['auto', 'mma', 'hopper'], {
      into: 'AttentionChoices',
      cast: 'attention::KernelRequest',
      field: 'backward',
    }),
    choice('transform', ['auto', 'kernel', 'prepass'], { into: 'AttentionChoices', cast: 'AttentionTransform' }),
  ],
};

// ---- the parameter groups several kernels share ----
const gemmParams = [
  dtype('dtype', { into: 'GemmArgs' }),
  flag('transA', { into: 'GemmArgs' }),
  flag('transB', { into: 'GemmArgs' }),
  int('m', { into: 'GemmArgs' }),
  int('n', { into: 'GemmArgs' }),
  int('k', { into: 'GemmArgs' }),
  float('alpha', { into: 'GemmArgs' }),
  input(
    'a',
    'dtype',
    { matrix: ['transA ? k : m', 'transA ? m : k', 'lda', 'strideA', 'batch'] },
    { into: 'GemmArgs' },
  ),
  int('lda', { into: 'GemmArgs' }),
  int('strideA', { into: 'GemmArgs' }),
  input(
    'b',
    'dtype',
    { matrix: ['transB ? n : k', 'transB ? k : n', 'ldb', 'strideB', 'batch'] },
    { into: 'GemmArgs' },
  ),
  int('ldb', { into: 'GemmArgs' }),
  int('strideB', { into: 'GemmArgs' }),
  float('beta', { into: 'GemmArgs' }),
  output('c', 'dtype', { matrix: ['m', 'n', 'ldc', 'strideC', 'batch'] }, { into: 'GemmArgs' }),
  int('ldc', { into: 'GemmArgs' }),
  int('strideC', { into: 'GemmArgs' }),
  int('batch', { into: 'GemmArgs' }),
];

const adamwHyper = ['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'biasCorrection1', 'biasCorrection2', 'gradScale']
  .map((name) => float(name, { into: 'AdamWArgs' }))
  .concat([
    // Clipping on the device (AdamWArgs in native/common/kernel_args.h): the gradients' sum of squares, read by
    // the kernel, and the norm it clips to.
    input('clipSumOfSquares', 'float64', '1', { into: 'AdamWArgs', ctype: 'double*', ...optional }),
    float('clipMaxNorm', { into: 'AdamWArgs' }),
  ]);
const adamwTensors = [
  output('param', 'float32', 'count', { ctype: 'float*' }),
  dtype('gradDtype'),
  input('grad', 'gradDtype', 'count'),
  output('m', 'float32', 'count', { ctype: 'float*' }),
  output('v', 'float32', 'count', { ctype: 'float*' }),
  int('count'),
];

const addNormHead = (withBias) => [
  flag('rms', { into: 'AddNormArgs' }),
  dtype('dtype', { into: 'AddNormArgs' }),
  input('a', 'dtype', 'rows * cols', { into: 'AddNormArgs' }),
  input('b', 'dtype', 'rows * cols', { into: 'AddNormArgs', ...optional }),
  input('scale', 'dtype', 'cols', { into: 'AddNormArgs', ...optional }),
  float('c', { into: 'AddNormArgs' }),
  input('weight', 'dtype', 'cols', { into: 'AddNormArgs', ...optional }),
  ...(withBias ? [input('bias', 'dtype', 'cols', { into: 'AddNormArgs', ...optional })] : []),
];
// addNorm's parameters, which addNormShift extends with the token shift's.
const addNormForward = [
  ...addNormHead(true),
  output('out', 'dtype', 'rows * cols'),
  output('sum', 'dtype', 'rows * cols', optional),
  output('stats', 'stats:dtype', 'rows * 2'),
  int('rows', { into: 'AddNormArgs' }),
  int('cols', { into: 'AddNormArgs' }),
  float('eps', { into: 'AddNormArgs' }),
];
const rowsCols = (extra = {}) => [int('rows', { ...extra }), int('cols', { ...extra })];

const headNormSizes = [
  dtype('dtype', { into: 'HeadNormArgs' }),
  int('batch', { into: 'HeadNormArgs' }),
  int('n', { into: 'HeadNormArgs' }),
  int('heads', { into: 'HeadNormArgs' }),
  int('dim', { into: 'HeadNormArgs' }),
  float('eps', { into: 'HeadNormArgs' }),
];

// Fields of the fused attention config, in the C++ struct of each engine (field names differ).
const attentionConfig = (engine, presenceOnly = false) => {
  const cuda = engine === 'cuda';
  const into = cuda ? 'AttentionProblem' : 'AttentionArgs';
  const size = (name, field) =>
    (cuda && field.int ? int32 : int)(name, { into, field: cuda ? (field.cuda ?? field.cpu) : field.cpu });
  const qElems = 'batch * heads * queryLen * headDim';
  return {
    name: 'config',
    kind: 'object',
    type: 'AttentionConfig',
    fields: [
      dtype('dtype', { into }),
      ...(cuda ? [] : [dtype('lseDtype', { into }), dtype('keyScaleDtype', { into })]),
      size('batch', { cpu: 'batch', int: true }),
      size('heads', { cpu: 'heads', int: true }),
      size('kvHeads', { cpu: 'kv_heads', int: true }),
      size('queryLen', { cpu: 'query_len', cuda: 'q_len' }),
      size('keyLen', { cpu: 'key_len', cuda: 'k_len' }),
      size('headDim', { cpu: 'head_dim', int: true }),
      float('scale', { into }),
      flag('causal', { into }),
      signed('queryOffset', { into }),
      { name: 'alibiSlopes', kind: 'f32s', length: 'heads', optional: true, into },
      size('rotaryDim', { cpu: 'rotary_dim', int: true }),
      { name: 'rotaryInvFreq', kind: 'f32s', length: 'rotaryDim / 2', optional: true, into },
      float('xposScaleBase', { into }),
      (presenceOnly ? presence : input)('keyScale', cuda ? 'float32' : 'keyScaleDtype', 'heads * headDim', {
        optional: true,
        into,
        ...(cuda ? { ctype: 'float*' } : {}),
      }),
      (presenceOnly ? presence : input)('queryPositions', 'int32', 'batch * queryLen', {
        optional: true,
        into,
        ctype: 'int32_t*',
        field: cuda ? 'q_positions' : 'query_positions',
      }),
      (presenceOnly ? presence : input)('keyPositions', 'int32', 'batch * keyLen', {
        optional: true,
        into,
        ctype: 'int32_t*',
        field: cuda ? 'k_positions' : 'key_positions',
      }),
      (presenceOnly ? presence : input)('querySegments', 'int32', 'batch * queryLen', {
        optional: true,
        into,
        ctype: 'int32_t*',
        field: cuda ? 'q_segments' : 'query_segments',
      }),
      (presenceOnly ? presence : input)('keySegments', 'int32', 'batch * keyLen', {
        optional: true,
        into,
        ctype: 'int32_t*',
        field: cuda ? 'k_segments' : 'key_segments',
      }),
      ...(cuda
        ? [
            signed('positionMin', { into, nullable: 'has_position_range' }),
            signed('positionMax', { into, nullable: 'has_position_range' }),
          ]
        : []),
      // Scratch budgets of the CPU kernels in bytes; null: the defaults.
      ...(cuda
        ? []
        : [float('keyCacheBytes', { into, orNull: -1 }), float('dqAccumulatorBytes', { into, orNull: -1 })]),
    ],
    requires: [
      ['rotaryDim % 2 == 0 && rotaryDim <= headDim', 'rotaryDim must be even and at most headDim'],
      ['kvHeads > 0', 'kvHeads must be positive'],
    ],
    qElems,
  };
};

const attentionForward = (engine) => {
  const cfg = attentionConfig(engine);
  const cuda = engine === 'cuda';
  const lseElem = cuda ? 'float32' : 'lseDtype';
  return {
    name: 'attentionForward',
    engines: [engine],
    cxx: 'attention_forward',
    ...(cuda ? { prototype: false, include: 'attention/attention.h' } : {}),
    params: [
      cfg,
      input('q', 'dtype', 'batch * heads * queryLen * headDim'),
      input('k', 'dtype', 'batch * kvHeads * keyLen * headDim'),
      input('v', 'dtype', 'batch * kvHeads * keyLen * headDim'),
      output('out', 'dtype', 'batch * heads * queryLen * headDim'),
      output('lse', lseElem, 'batch * heads * queryLen', cuda ? { ctype: 'float*' } : {}),
      ...(cuda ? [attentionOptions] : []),
    ],
    requires: cfg.requires,
  };
};

const attentionBackward = (engine) => {
  const cfg = attentionConfig(engine);
  const cuda = engine === 'cuda';
  const q = 'batch * heads * queryLen * headDim',
    kv = 'batch * kvHeads * keyLen * headDim';
  return {
    name: 'attentionBackward',
    engines: [engine],
    cxx: 'attention_backward',
    ...(cuda ? { prototype: false, include: 'attention/attention.h' } : {}),
    params: [
      cfg,
      input('q', 'dtype', q),
      input('k', 'dtype', kv),
      input('v', 'dtype', kv),
      input('out', 'dtype', q),
      input('lse', cuda ? 'float32' : 'lseDtype', 'batch * heads * queryLen', cuda ? { ctype: 'float*' } : {}),
      input('gradOut', 'dtype', q),
      output('gradQ', 'dtype', q),
      output('gradK', 'dtype', kv),
      output('gradV', 'dtype', kv),
      output('gradKeyScale', cuda ? 'float32' : 'keyScaleDtype', 'heads * headDim', {
        optional: true,
        ...(cuda ? { ctype: 'float*' } : {}),
      }),
      ...(cuda ? [attentionOptions] : []),
    ],
    requires: cfg.requires,
  };
};

// ---- the paged KV cache (issue 14; /work/notes/inference-contract.md) ----
// Step metadata lives in int32 device buffers (a captured decode graph replays with new values); the integer
// fields are shapes and upper bounds only. The kernels guard every value they read through those buffers —
// block ids outside [0, numBlocks), context lengths beyond the table or maxContextLen, query ranges outside
// [0, totalQueries) or longer than maxQueryLen — by skipping what they name, on both engines, so the buffers
// carry no `values` bounds: a bound checked on the host would make the CPU engine refuse what the CUDA engine
// skips (and block-table entries past a sequence's context are unused, whatever they hold). `disjoint` keeps
// the kernels from writing what they read.
const pagedBatchFields = (into) => [
  int('totalQueries', { into }),
  int('numSeqs', { into }),
  int('blockSize', { into }),
  int('numBlocks', { into }),
  int('maxBlocksPerSeq', { into }),
  int('maxQueryLen', { into }),
  int('maxContextLen', { into }),
  input('queryStart', 'int32', 'numSeqs + 1', { into, ctype: 'int32_t*', disjoint: true }),
  input('contextLens', 'int32', 'numSeqs', { into, ctype: 'int32_t*', disjoint: true }),
  input('blockTables', 'int32', 'numSeqs * maxBlocksPerSeq', { into, ctype: 'int32_t*', disjoint: true }),
];
const pagedBatch = { name: 'batch', kind: 'object', type: 'PagedBatchConfig', fields: pagedBatchFields('PagedBatch') };
const positiveBlockSize = ['blockSize > 0', 'blockSize must be positive'];

export const KERNELS = [
  {
    name: 'copy',
    engines: BOTH,
    cxx: 'copy_strided',
    params: [
      dtype('srcDtype'),
      input('src', 'srcDtype', { strided: ['shape', 'srcStrides'] }),
      ints('srcStrides', { signed: true, sameLength: 'shape' }),
      dtype('dstDtype'),
      output('dst', 'dstDtype', { strided: ['shape', 'dstStrides'] }),
      ints('dstStrides', { signed: true, sameLength: 'shape' }),
      ints('shape', { rank: true }),
    ],
  },
  {
    name: 'fill',
    engines: BOTH,
    cxx: 'fill',
    params: [dtype(), output('dst', 'dtype', 'count'), int('count'), float('value')],
  },
  {
    name: 'unary',
    engines: BOTH,
    cxx: 'unary',
    params: [
      code('op', 'unaryOp'),
      dtype(),
      input('x', 'dtype', 'count'),
      output('out', 'dtype', 'count'),
      int('count'),
      float('scalar'),
    ],
  },
  {
    name: 'unaryGrad',
    engines: BOTH,
    cxx: 'unary_grad',
    params: [
      code('op', 'unaryGradOp'),
      dtype(),
      input('x', 'dtype', 'count'),
      input('gradOut', 'dtype', 'count'),
      output('gradIn', 'dtype', 'count'),
      int('count'),
    ],
  },
  {
    name: 'binary',
    engines: BOTH,
    cxx: 'binary',
    params: [
      code('op', 'binaryOp'),
      dtype(),
      input('a', 'dtype', { strided: ['shape', 'aStrides'] }),
      ints('aStrides', { signed: true, sameLength: 'shape' }),
      input('b', 'dtype', { strided: ['shape', 'bStrides'] }),
      ints('bStrides', { signed: true, sameLength: 'shape' }),
      output('out', 'dtype', { strided: ['shape'] }),
      ints('shape', { rank: true }),
    ],
  },
  {
    name: 'reduce',
    engines: BOTH,
    cxx: 'reduce',
    params: [
      code('op', 'reduceOp'),
      dtype(),
      input('x', 'dtype', 'outer * size * inner'),
      output('out', 'dtype', 'outer * inner'),
      int('outer'),
      int('size'),
      int('inner'),
    ],
  },
  { name: 'gemm', method: 'matmul', engines: BOTH, cxx: 'gemm', params: gemmParams },
  {
    // The CUDA engine's GemmArgs carry the bias (cuBLASLt's epilogue); the CPU's gemm_bias takes it beside them.
    name: 'gemmBias',
    method: 'matmulBias',
    engines: CUDA,
    cxx: 'gemm',
    params: [...gemmParams, input('bias', 'dtype', 'n', { into: 'GemmArgs' })],
    requires: [['beta == 0', 'a bias needs beta = 0']],
  },
  {
    name: 'gemmBias',
    method: 'matmulBias',
    engines: CPU,
    cxx: 'gemm_bias',
    params: [...gemmParams, input('bias', 'dtype', 'n')],
    requires: [['beta == 0', 'a bias needs beta = 0']],
  },
  {
    // Products of one input with several weights (a decode step's query, key and value projections): one launch
    // where the engine can. Each part repeats the call's dtype, m and k so that its buffers are checked by them.
    name: 'gemmSharedInput',
    method: 'matmulSharedInput',
    engines: BOTH,
    cxx: 'gemm_shared_input',
    params: [
      dtype('dtype'),
      int('m'),
      int('k'),
      input('a', 'dtype', 'm * k', { disjoint: true }),
      {
        name: 'parts',
        kind: 'list',
        struct: 'SharedInputPart',
        fields: [
          dtype('dtype'),
          int('m'),
          int('k'),
          int('n'),
          input('b', 'dtype', 'n * k'),
          output('c', 'dtype', 'm * n'),
        ],
      },
    ],
  },
  {
    name: 'softmax',
    engines: BOTH,
    cxx: 'softmax',
    params: [
      dtype(),
      input('x', 'dtype', 'rows * cols'),
      output('out', 'dtype', 'rows * cols'),
      ...rowsCols(),
      flag('log'),
    ],
  },
  {
    name: 'softmaxGrad',
    engines: BOTH,
    cxx: 'softmax_grad',
    params: [
      dtype(),
      input('y', 'dtype', 'rows * cols'),
      input('gradOut', 'dtype', 'rows * cols'),
      output('gradIn', 'dtype', 'rows * cols'),
      ...rowsCols(),
      flag('log'),
    ],
  },
  {
    name: 'norm',
    engines: BOTH,
    cxx: 'norm',
    params: [
      flag('rms'),
      dtype(),
      input('x', 'dtype', 'rows * cols'),
      input('weight', 'dtype', 'cols', optional),
      input('bias', 'dtype', 'cols', optional),
      output('out', 'dtype', 'rows * cols'),
      output('stats', 'stats:dtype', 'rows * 2'),
      ...rowsCols(),
      float('eps'),
    ],
  },
  {
    name: 'normGrad',
    engines: BOTH,
    cxx: 'norm_grad',
    params: [
      flag('rms'),
      dtype(),
      input('x', 'dtype', 'rows * cols'),
      input('weight', 'dtype', 'cols', optional),
      input('stats', 'stats:dtype', 'rows * 2'),
      input('gradOut', 'dtype', 'rows * cols'),
      output('gradIn', 'dtype', 'rows * cols'),
      output('gradWeight', 'dtype', 'cols', optional),
      output('gradBias', 'dtype', 'cols', optional),
      ...rowsCols(),
    ],
  },
  {
    name: 'crossEntropy',
    engines: BOTH,
    cxx: 'cross_entropy',
    params: [
      dtype(),
      input('logits', 'dtype', 'rows * vocab'),
      input('targets', 'int32', 'rows', { ctype: 'int32_t*', values: { below: 'vocab', except: 'ignoreIndex' } }),
      output('losses', 'stats:dtype', 'rows'),
      output('lse', 'stats:dtype', 'rows'),
      int('rows'),
      int('vocab'),
      signed('ignoreIndex'),
    ],
  },
  {
    name: 'crossEntropyGrad',
    engines: BOTH,
    cxx: 'cross_entropy_grad',
    params: [
      dtype(),
      input('logits', 'dtype', 'rows * vocab'),
      input('targets', 'int32', 'rows', { ctype: 'int32_t*', values: { below: 'vocab', except: 'ignoreIndex' } }),
      input('lse', 'stats:dtype', 'rows'),
      input('gradLoss', 'stats:dtype', 'rows'),
      output('gradLogits', 'dtype', 'rows * vocab'),
      int('rows'),
      int('vocab'),
      signed('ignoreIndex'),
    ],
  },
  {
    // Returns −1, or the first position whose id is outside [0, vocab) (the kernel checks: no row is read for it).
    name: 'embedding',
    engines: BOTH,
    cxx: 'embedding',
    returns: 'int64',
    params: [
      dtype(),
      input('table', 'dtype', 'vocab * dim'),
      input('ids', 'int32', 'count', { ctype: 'int32_t*', disjoint: true }),
      output('out', 'dtype', 'count * dim'),
      int('count'),
      int('dim'),
      int('vocab'),
    ],
  },
  {
    name: 'embeddingGrad',
    engines: BOTH,
    cxx: 'embedding_grad',
    // gradTable's rows are what its buffer holds past the offset: ids must index one of them.
    params: [
      dtype(),
      input('ids', 'int32', 'count', { ctype: 'int32_t*', values: { below: 'rowsOf(gradTable, dim)' } }),
      input('gradOut', 'dtype', 'count * dim'),
      output('gradTable', 'dtype', 'rowsOf(gradTable, dim) * dim'),
      int('count'),
      int('dim'),
      { name: 'rows', kind: 'derived', value: 'rowsOf(gradTable, dim)' },
    ],
  },
  {
    // Out-of-range ids give zero rows: each engine's kernel checks them where it reads them.
    name: 'embeddingGather',
    method: 'embeddingUnchecked',
    engines: BOTH,
    cxx: 'embedding_gather',
    params: [
      dtype(),
      input('table', 'dtype', 'vocab * dim'),
      input('ids', 'int32', 'count', { ctype: 'int32_t*', disjoint: true }),
      output('out', 'dtype', 'count * dim'),
      int('count'),
      int('dim'),
      int('vocab'),
    ],
  },
  {
    name: 'dropout',
    engines: BOTH,
    cxx: 'dropout',
    params: [
      dtype(),
      input('x', 'dtype', 'count'),
      output('out', 'dtype', 'count'),
      int('count'),
      float('p'),
      seed('seed'),
    ],
  },
  {
    name: 'randomFill',
    engines: BOTH,
    cxx: 'random_fill',
    params: [
      dtype(),
      output('dst', 'dtype', 'count'),
      int('count'),
      flag('normal'),
      float('a'),
      float('b'),
      seed('seed'),
    ],
  },
  {
    // The CUDA adamw can also write a half copy of the weights (adamwMany uses that path): none here.
    name: 'adamw',
    engines: BOTH,
    cxx: 'adamw',
    trailing: { cuda: { params: ['int shadow_dtype', 'char* shadow'], args: ['0', 'nullptr'] } },
    params: [...adamwTensors, ...adamwHyper],
  },
  {
    name: 'adamwMany',
    engines: BOTH,
    cxx: 'adamw_many',
    params: [
      {
        name: 'tensors',
        kind: 'list',
        struct: 'AdamWTensorArgs',
        fields: [
          output('param', 'float32', 'count', { ctype: 'float*' }),
          dtype('gradDtype', { field: 'grad_dtype' }),
          input('grad', 'gradDtype', 'count'),
          output('m', 'float32', 'count', { ctype: 'float*' }),
          output('v', 'float32', 'count', { ctype: 'float*' }),
          int('count'),
          dtype('shadowDtype'),
          output('shadow', 'shadowDtype', 'count', optional),
        ],
      },
      ...adamwHyper,
    ],
  },
  {
    // 8-bit AdamW (native/fused/adamw8bit/adamw8bit.h): each moment is a code of a 256-value quantization map
    // (signed for m, unsigned for v) times a float32 absmax per block of 256 elements. Codes travel in int32
    // buffers, four a word: byte i of the buffer is element i's code.
    name: 'adamw8bitMany',
    engines: BOTH,
    cxx: 'adamw8bit_many',
    params: [
      {
        name: 'tensors',
        kind: 'list',
        struct: 'AdamW8bitTensorArgs',
        fields: [
          output('param', 'float32', 'count', { ctype: 'float*' }),
          dtype('gradDtype', { field: 'grad_dtype' }),
          input('grad', 'gradDtype', 'count'),
          output('m', 'int32', '(count + 3) / 4', { ctype: 'uint8_t*' }),
          output('v', 'int32', '(count + 3) / 4', { ctype: 'uint8_t*' }),
          output('mAbsmax', 'float32', '(count + 255) / 256', { ctype: 'float*' }),
          output('vAbsmax', 'float32', '(count + 255) / 256', { ctype: 'float*' }),
          int('count'),
          dtype('shadowDtype'),
          output('shadow', 'shadowDtype', 'count', optional),
        ],
      },
      { name: 'signedMap', kind: 'f32s', length: '256' },
      { name: 'unsignedMap', kind: 'f32s', length: '256' },
      ...adamwHyper,
    ],
  },
  {
    name: 'sumOfSquares',
    engines: BOTH,
    cxx: 'sum_of_squares',
    returns: 'double',
    params: [dtype(), input('x', 'dtype', 'count'), int('count')],
  },
  {
    name: 'sumOfSquaresMany',
    engines: BOTH,
    cxx: 'sum_of_squares_many',
    returns: 'double',
    params: [
      {
        name: 'inputs',
        kind: 'list',
        struct: 'SquaresInput',
        fields: [dtype(), input('x', 'dtype', 'count'), int('count')],
      },
    ],
  },
  {
    // sumOfSquaresMany's sum written to the engine's memory instead of returned: no wait for the device.
    name: 'sumOfSquaresManyTo',
    engines: BOTH,
    cxx: 'sum_of_squares_many_to',
    params: [
      {
        name: 'inputs',
        kind: 'list',
        struct: 'SquaresInput',
        fields: [dtype(), input('x', 'dtype', 'count'), int('count')],
      },
      output('out', 'float64', '1', { ctype: 'double*' }),
    ],
  },
  {
    name: 'maskedSoftmax',
    engines: BOTH,
    cxx: 'masked_softmax',
    params: [
      {
        name: 'config',
        kind: 'object',
        fields: [
          dtype('dtype', { into: 'MaskedSoftmaxArgs' }),
          ...['batch', 'heads', 'queryLen', 'keyLen'].map((n) => int(n, { into: 'MaskedSoftmaxArgs' })),
          flag('causal', { into: 'MaskedSoftmaxArgs' }),
          signed('queryOffset', { into: 'MaskedSoftmaxArgs' }),
          { name: 'alibiSlopes', kind: 'f64s', length: 'heads', optional: true, into: 'MaskedSoftmaxArgs' },
          ...['queryPositions', 'querySegments'].map((n) =>
            input(
              n,
              'int32',
              { matrix: ['batch', 'queryLen', 'queryStride', '0', '1'] },
              { optional: true, into: 'MaskedSoftmaxArgs', ctype: 'int32_t*' },
            ),
          ),
          ...['keyPositions', 'keySegments'].map((n) =>
            input(
              n,
              'int32',
              { matrix: ['batch', 'keyLen', 'keyStride', '0', '1'] },
              { optional: true, into: 'MaskedSoftmaxArgs', ctype: 'int32_t*' },
            ),
          ),
          int('queryStride', { into: 'MaskedSoftmaxArgs' }),
          int('keyStride', { into: 'MaskedSoftmaxArgs' }),
        ],
      },
      input('scores', 'dtype', 'batch * heads * queryLen * keyLen'),
      output('out', 'dtype', 'batch * heads * queryLen * keyLen'),
    ],
    requires: [['has(querySegments) == has(keySegments)', 'give both segment arrays or neither']],
  },
  {
    name: 'rotary',
    engines: BOTH,
    cxx: 'rotary',
    params: [
      {
        name: 'config',
        kind: 'object',
        fields: [
          dtype('dtype', { into: 'RotaryArgs' }),
          ...['batch', 'heads', 'length', 'headDim', 'rotaryDim'].map((n) => int(n, { into: 'RotaryArgs' })),
          { name: 'invFreq', kind: 'f64s', length: 'rotaryDim / 2', optional: true, into: 'RotaryArgs' },
          input(
            'positions',
            'int32',
            { matrix: ['batch', 'length', 'positionStride', '0', '1'] },
            { optional: true, into: 'RotaryArgs', ctype: 'int32_t*' },
          ),
          int('positionStride', { into: 'RotaryArgs' }),
          signed('positionOffset', { into: 'RotaryArgs' }),
          ...['xposScaleBase', 'xposAnchor', 'xposSign', 'xposMinDistance', 'multiplier'].map((n) =>
            float(n, { into: 'RotaryArgs' }),
          ),
          flag('transpose', { into: 'RotaryArgs' }),
        ],
      },
      input('x', 'dtype', 'batch * heads * length * headDim'),
      output('out', 'dtype', 'batch * heads * length * headDim'),
    ],
    requires: [
      ['rotaryDim % 2 == 0 && rotaryDim <= headDim', 'rotaryDim must be even and at most headDim'],
      ['rotaryDim == 0 || has(invFreq)', 'invFreq is missing'],
    ],
  },
  {
    name: 'addNorm',
    engines: BOTH,
    cxx: 'add_norm',
    params: [...addNormForward],
  },
  {
    name: 'addNormGrad',
    engines: BOTH,
    cxx: 'add_norm_grad',
    params: [
      ...addNormHead(false),
      input('stats', 'stats:dtype', 'rows * 2'),
      input('gradOut', 'dtype', 'rows * cols'),
      output('gradA', 'dtype', 'rows * cols'),
      output('gradB', 'dtype', 'rows * cols', optional),
      output('gradScale', 'dtype', 'cols', optional),
      output('gradWeight', 'dtype', 'cols', optional),
      output('gradBias', 'dtype', 'cols', optional),
      int('rows', { into: 'AddNormArgs' }),
      int('cols', { into: 'AddNormArgs' }),
    ],
  },
  {
    name: 'biasGelu',
    engines: BOTH,
    cxx: 'bias_gelu',
    params: [
      dtype(),
      input('x', 'dtype', 'rows * cols'),
      input('bias', 'dtype', 'cols'),
      output('out', 'dtype', 'rows * cols'),
      ...rowsCols(),
    ],
  },
  {
    // out = gelu(a · bᵀ + bias): a feed-forward's first layer without gradients (decode: the GELU in the few-row
    // product's epilogue on CUDA; otherwise the product, then biasGelu in place).
    name: 'gemmBiasGelu',
    method: 'matmulBiasGelu',
    engines: BOTH,
    cxx: 'gemm_bias_gelu',
    params: [
      dtype(),
      int('m'),
      int('n'),
      int('k'),
      input('a', 'dtype', 'm * k', { disjoint: true }),
      input('b', 'dtype', 'n * k', { disjoint: true }),
      input('bias', 'dtype', 'n', { disjoint: true }),
      output('out', 'dtype', 'm * n'),
    ],
    requires: [['k > 0', 'k must be at least 1']],
  },
  {
    name: 'biasGeluGrad',
    engines: BOTH,
    cxx: 'bias_gelu_grad',
    params: [
      dtype(),
      input('x', 'dtype', 'rows * cols'),
      input('bias', 'dtype', 'cols'),
      input('gradOut', 'dtype', 'rows * cols'),
      output('gradIn', 'dtype', 'rows * cols'),
      output('gradBias', 'dtype', 'cols', optional),
      ...rowsCols(),
    ],
  },
  {
    name: 'headNorm',
    engines: BOTH,
    cxx: 'head_norm',
    params: [
      ...headNormSizes,
      input('x', 'dtype', 'batch * n * heads * dim'),
      input('weight', 'dtype', 'heads * dim', optional),
      output('out', 'dtype', 'batch * n * heads * dim'),
      output('rstd', 'stats:dtype', 'batch * n * heads'),
    ],
  },
  {
    // A paged step's attention inputs in one launch (native/fused/head_norm/head_norm.h: head_norm_rows).
    name: 'headNormRows',
    engines: BOTH,
    cxx: 'head_norm_rows',
    params: [
      {
        name: 'items',
        kind: 'list',
        struct: 'HeadNormRowsItem',
        fields: [
          dtype(),
          int('count'),
          int('heads'),
          int('dim'),
          int('rows'),
          flag('normalize'),
          input('x', 'dtype', 'count * heads * dim', { disjoint: true }),
          input('weight', 'dtype', 'heads * dim', optional),
          input('index', 'int32', 'count', { ctype: 'int32_t*', optional: true, disjoint: true }),
          output('y', 'dtype', '(has(index) ? rows : count) * heads * dim'),
        ],
      },
      float('eps'),
    ],
  },
  {
    name: 'headNormGrad',
    engines: BOTH,
    cxx: 'head_norm_grad',
    params: [
      ...headNormSizes,
      input('x', 'dtype', 'batch * n * heads * dim'),
      input('weight', 'dtype', 'heads * dim', optional),
      input('rstd', 'stats:dtype', 'batch * n * heads'),
      input('gradOut', 'dtype', 'batch * n * heads * dim'),
      output('gradIn', 'dtype', 'batch * n * heads * dim'),
      output('gradWeight', 'dtype', 'heads * dim', optional),
    ],
  },
  {
    name: 'tokenShift',
    engines: BOTH,
    cxx: 'token_shift',
    params: [
      dtype(),
      input('x', 'dtype', 'batch * n * dim'),
      output('out', 'dtype', 'batch * n * dim'),
      input('segments', 'int32', 'batch * n', { optional: true, ctype: 'int32_t*' }),
      int('batch'),
      int('n'),
      int('dim'),
      int32('shifts'),
      flag('backward'),
      flag('accumulate'),
    ],
  },
  attentionForward('cpu'),
  attentionBackward('cpu'),
  attentionForward('cuda'),
  attentionBackward('cuda'),
  {
    // Where the tiled forward and the backward apply rotary, xPos and the key scale for this problem.
    name: 'attentionTransformPlan',
    method: false,
    engines: CUDA,
    cxx: 'attention_transform_plan',
    prototype: false,
    include: 'attention/attention.h',
    // It reads only whether the config's buffers are given, never their contents: they are not resolved.
    returns: 'string',
    params: [attentionConfig('cuda', true), attentionOptions],
    requires: attentionConfig('cuda').requires,
  },
  {
    // Attention of every query row of a ragged batch over its sequence's keys in the paged pools.
    name: 'pagedAttention',
    engines: BOTH,
    cxx: 'paged_attention',
    params: [
      {
        name: 'config',
        kind: 'object',
        type: 'PagedAttentionConfig',
        fields: [
          dtype('dtype', { into: 'PagedAttentionArgs' }),
          ...pagedBatchFields('PagedAttentionArgs'),
          ...['heads', 'kvHeads', 'headDim'].map((n) => int(n, { into: 'PagedAttentionArgs' })),
          float('scale', { into: 'PagedAttentionArgs' }),
          { name: 'alibiSlopes', kind: 'f32s', length: 'heads', optional: true, into: 'PagedAttentionArgs' },
          int('rotaryDim', { into: 'PagedAttentionArgs' }),
          { name: 'rotaryInvFreq', kind: 'f32s', length: 'rotaryDim / 2', optional: true, into: 'PagedAttentionArgs' },
          float('xposScaleBase', { into: 'PagedAttentionArgs' }),
          dtype('keyScaleDtype', { into: 'PagedAttentionArgs' }),
          input('keyScale', 'keyScaleDtype', 'heads * headDim', {
            optional: true,
            into: 'PagedAttentionArgs',
            disjoint: true,
          }),
          int('window', { into: 'PagedAttentionArgs' }),
          float('softCap', { into: 'PagedAttentionArgs' }),
        ],
      },
      input('q', 'dtype', 'totalQueries * heads * headDim', { disjoint: true }),
      input('keyPool', 'dtype', 'numBlocks * blockSize * kvHeads * headDim', { disjoint: true }),
      input('valuePool', 'dtype', 'numBlocks * blockSize * kvHeads * headDim', { disjoint: true }),
      output('out', 'dtype', 'totalQueries * heads * headDim'),
    ],
    requires: [
      ['kvHeads > 0', 'kvHeads must be positive'],
      ['heads % kvHeads == 0', 'heads must be a multiple of kvHeads'],
      ['rotaryDim % 2 == 0 && rotaryDim <= headDim', 'rotaryDim must be even and at most headDim'],
      ['rotaryDim == 0 || has(rotaryInvFreq)', 'rotaryDim > 0 needs rotaryInvFreq'],
      ['xposScaleBase >= 0', 'xposScaleBase must be >= 0'],
      ['window >= 0', 'window must be >= 0 (0: none)'],
      ['softCap >= 0', 'softCap must be >= 0 (0: none)'],
      positiveBlockSize,
    ],
  },
  {
    // dst row index[i] = src row i; index values outside [0, rows) are skipped.
    name: 'scatterRows',
    engines: BOTH,
    cxx: 'scatter_rows',
    params: [
      dtype(),
      input('src', 'dtype', 'count * width', { disjoint: true }),
      input('index', 'int32', 'count', { ctype: 'int32_t*', disjoint: true }),
      output('dst', 'dtype', 'rows * width'),
      int('count'),
      int('width'),
      int('rows'),
    ],
  },
  {
    // Token shift of a step's rows, earlier positions read from the tail pool.
    name: 'pagedTokenShift',
    engines: BOTH,
    cxx: 'paged_token_shift',
    params: [
      dtype(),
      input('x', 'dtype', 'totalQueries * dim', { disjoint: true }),
      input('tails', 'dtype', 'numBlocks * ring * dim', { disjoint: true }),
      output('out', 'dtype', 'totalQueries * dim'),
      int('dim'),
      int32('shifts'),
      int('ring'),
      pagedBatch,
    ],
    requires: [['ring >= shifts', 'ring must be at least shifts'], positiveBlockSize],
  },
  {
    // pagedTokenShift then pagedTailWrite of the same rows, in one pass where the engine can (decode steps).
    name: 'pagedTokenShiftAndTailWrite',
    engines: BOTH,
    cxx: 'paged_token_shift_and_tail_write',
    params: [
      dtype(),
      input('x', 'dtype', 'totalQueries * dim', { disjoint: true }),
      output('tails', 'dtype', 'numBlocks * ring * dim'),
      output('out', 'dtype', 'totalQueries * dim'),
      int('dim'),
      int32('shifts'),
      int('ring'),
      pagedBatch,
    ],
    requires: [['ring >= shifts && ring > 0', 'ring must be positive and at least shifts'], positiveBlockSize],
  },
  {
    // addNorm whose output is also a decode step's token-shifted sub-layer input: out = norm(a + b·scale·c) as
    // addNorm's, then shifted = pagedTokenShift(out) through the tails and out stored as its position's tail
    // (pagedTokenShiftAndTailWrite of out), in one pass (native/fused/add_norm/). Steps of at most one row
    // per sequence: a row's earlier positions are all in the tails, none in the step.
    name: 'addNormShift',
    engines: BOTH,
    cxx: 'add_norm_shift',
    params: [
      ...addNormForward,
      output('tails', 'dtype', 'numBlocks * ring * cols'),
      output('shifted', 'dtype', 'rows * cols'),
      int32('shifts'),
      int('ring'),
      pagedBatch,
    ],
    requires: [
      ['ring >= shifts && ring > 0', 'ring must be positive and at least shifts'],
      ['rows == totalQueries', "rows must be the step's totalQueries"],
      ['maxQueryLen <= 1', 'the fused shift takes steps of at most one row per sequence (maxQueryLen ≤ 1)'],
      positiveBlockSize,
    ],
  },
  {
    // The step's rows written into the tail pool.
    name: 'pagedTailWrite',
    engines: BOTH,
    cxx: 'paged_tail_write',
    params: [
      dtype(),
      input('x', 'dtype', 'totalQueries * dim', { disjoint: true }),
      output('tails', 'dtype', 'numBlocks * ring * dim'),
      int('dim'),
      int('ring'),
      pagedBatch,
    ],
    requires: [['ring > 0', 'ring must be positive'], positiveBlockSize],
  },
  {
    // Device sampling (src/ops/sampling.ts; the per-row arithmetic: native/common/sampling_math.h). Per row:
    // penalties from counts, temperature (0: greedy), log-probabilities of that distribution, then top-k, top-p,
    // min-p and a draw with the counter-based uniform of (seed, step). Advances steps and counts on the device.
    name: 'sampleTokens',
    engines: BOTH,
    cxx: 'sample_tokens',
    params: [
      dtype(),
      input('logits', 'dtype', 'rows * vocab'),
      input('params', 'float32', 'rows * 7', { ctype: 'float*', disjoint: true }),
      input('seeds', 'int32', 'rows * 2', { ctype: 'int32_t*', disjoint: true }),
      output('steps', 'int32', 'rows', { ctype: 'int32_t*' }),
      output('counts', 'int32', 'rows * vocab', { ctype: 'int32_t*', ...optional }),
      output('ids', 'int32', 'rows', { ctype: 'int32_t*' }),
      output('logprobs', 'float32', 'rows', { ctype: 'float*', ...optional }),
      output('topIds', 'int32', 'rows * topN', { ctype: 'int32_t*', ...optional }),
      output('topLogprobs', 'float32', 'rows * topN', { ctype: 'float*', ...optional }),
      int32('rows'),
      int32('vocab'),
      int32('topN', { max: 20 }),
    ],
    requires: [
      ['dtype == 0 || dtype == 2', 'logits must be float32 or bfloat16'],
      ['vocab > 0', 'vocab must be at least 1'],
      ['topN <= vocab', 'topN must be at most vocab'],
      ['topN == 0 || (has(topIds) && has(topLogprobs))', 'topN > 0 needs both topIds and topLogprobs'],
    ],
  },
];
