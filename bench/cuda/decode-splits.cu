// Times the paged decode kernel (native/cuda/paged/decode_kernel.cuh: bf16 steps of one query per sequence) at the
// engine's split rule (heuristics.h: decode_launch_shape, marked "rule") and at every split count of a sweep, for
// andromeda-3b's decode shapes: 24 query heads × 128 over one KV head, bf16, key scale (float32), rotary 64 with xPos
// (scale base 512), ALiBi on 12 of the 24 heads, blocks of 32 positions, block tables a random permutation of the
// pool's blocks. Each shape is timed twice — the whole call (decode kernel, then the combine when there are several
// splits) and the decode kernel alone — so the combine's share shows as the difference: the rule trades the two
// (more splits shorten each CTA's walk but add setup and partial rows to combine). It checks every shape's output
// against the rule's, and the rule's against a float64 attention on the host for 1 × 2,048 keys, and prints the
// fastest shape per case. Built and run alone:
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I native bench/cuda/decode-splits.cu -o /tmp/decode-splits && /tmp/decode-splits
//
// The launches are those of attention.cu for the decode kernel (launch<bf16, 128, true>), on a stream of this program,
// with scratch from cudaMalloc. Times: 200 back-to-back calls captured as one CUDA graph (decode replays a captured
// step), the median of 5 replays, after one for warm-up; each call reads a different copy of the pools, cycling over
// more than twice the L2, as decode does (a layer's K/V are read once per step, all layers' together far more than
// L2). The sweep is bench/cuda/paged-splits.cu's for the general kernel, redone for this kernel's grid.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.h"
#include "cuda/paged/attention_kernel.cuh"
#include "cuda/paged/decode_kernel.cuh"
#include "cuda/paged/heuristics.h"

using namespace andromeda::cuda::paged;

namespace {

using andromeda::bf16_to_float;
using andromeda::float_to_bf16;

using T = __nv_bfloat16;
constexpr int kHeads = 24, kKvHeads = 1, kHeadDim = 128, kRotaryDim = 64, kBlockSize = 32, kAlibiHeads = 12;
constexpr double kXposScaleBase = 512, kRotaryBase = 10000;
constexpr int kDtypeBf16 = 2;  // andromeda::DType
constexpr int kReps = 200, kBatches = 5;  // calls per timed graph, graphs timed (the median is reported)
// A shape's output vs the rule's: max abs difference over the rule's largest |output| (bf16 rounding of outputs
// merged in another order); the rule's vs float64: max abs difference, as paged-splits.cu.
constexpr double kShapeLimit = 2e-2, kReferenceLimit = 2e-2;
// Split counts tried (those up to the case's slices): powers of two and the steps between, and 132 / 264 (one and
// two CTAs per multiprocessor of an H100 SXM at one sequence).
constexpr int64_t kSweepSplits[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 132, 192, 264};

static_assert(kLaunchDecodeSliceKeys == kSliceKeys && kLaunchDecodeWarps == kDecodeWarps,
              "heuristics.h and this sweep size the grid by the decode kernel's slices and warps");
static_assert(kHeads / kKvHeads <= kDecodeRows, "the decode kernel holds a KV head's group in one CTA");

struct Case {
  int64_t seqs, keys;  // sequences of one query each, keys per sequence (the query's own included)
  bool reference;      // compare the rule's output with the float64 attention
};

struct Random {
  uint32_t state = 12345;
  uint32_t next() {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    return state;
  }
  float uniform() { return float(next()) / 4294967296.f * 2.f - 1.f; }  // [−1, 1)
};

/** The decode kernel's dynamic shared memory for a call (attention.cu's decode_bytes). */
size_t decode_bytes(const AttentionParams& p) {
  return decode_layout(kHeadDim, p.rotary_dim, p.key_dim > kHeadDim).bytes;
}

/** The decode kernel's launch of attention.cu's launch<bf16, D, true>; `p` carries splits, chunk and the scratch. */
void launch_decode(const AttentionParams& p, cudaStream_t stream) {
  const dim3 grid(unsigned(p.splits), unsigned(p.batch.num_seqs * p.kv_heads));
  paged_decode_kernel<kHeadDim><<<grid, kDecodeThreads, decode_bytes(p), stream>>>(p);
}

/** The combine of attention.cu's launch (several splits only). */
void launch_combine(const AttentionParams& p, cudaStream_t stream) {
  const dim3 combine_grid(unsigned(p.batch.max_query_len * p.heads), unsigned(p.batch.num_seqs));
  paged_attention_combine_kernel<T, kHeadDim><<<combine_grid, kCombineThreads, 0, stream>>>(p);
}

/** What one timed call records on the stream: launch_call (the engine's call) or launch_decode (its kernel). */
using RecordCall = void (*)(const AttentionParams& p, cudaStream_t stream);

/** One engine call: the decode kernel, then with several splits the combine. */
void launch_call(const AttentionParams& p, cudaStream_t stream) {
  launch_decode(p, stream);
  if (p.splits > 1) launch_combine(p, stream);
}

/**
 * The splits for a sweep entry, rounded as decode_launch_shape rounds its own: whole 16-key slices per split, then
 * only the splits that start inside the context.
 */
PagedLaunch sweep_shape(int64_t keys, int64_t wanted_splits) {
  const int64_t slices = (keys + kLaunchDecodeSliceKeys - 1) / kLaunchDecodeSliceKeys;
  PagedLaunch l{};
  l.row_blocks = 1;
  l.chunk = (slices + wanted_splits - 1) / wanted_splits * kLaunchDecodeSliceKeys;
  l.splits = (keys + l.chunk - 1) / l.chunk;
  return l;
}

/** Host copies of a case's inputs (bf16 bits, pool copy 0). */
struct Inputs {
  std::vector<uint16_t> q, k, v;    // q [seqs, heads, D]; pools [blocks, block size, kv heads, D]
  std::vector<int32_t> tables;      // [seqs, blocks per sequence]
  std::vector<float> key_scale;     // [heads, D]
  std::vector<float> slopes, inv_freq;
};

/**
 * The attention in float64, written out as the CPU engine defines it (native/cpu/paged_attention_impl.h): for
 * query position p and key position j of sequence s, head h (KV head h mod kvHeads), on each rotary pair
 * (f, f + r/2) with ζ_f = (2f + 0.4r) / (1.4r),
 *   q' = R(p·θ_f) q,  k' = R(j·θ_f) (k ⊙ keyScale[h]),  x = ζ_f^((p − j) / B) on the pair (1 past the rotary ones),
 *   score = scale · Σ q'·x·k' − slope_h · (p − j),  out = Σ_j softmax(score)_j · v_j   over keys j ≤ p.
 * (bench/cuda/paged-splits.cu's, unchanged: a .cu's anonymous namespace cannot be shared.)
 */
std::vector<double> reference(const Case& c, const Inputs& in) {
  const int half = kRotaryDim / 2;
  const int64_t blocks_per = (c.keys + kBlockSize - 1) / kBlockSize;
  const double scale = 1 / std::sqrt(double(kHeadDim));
  std::vector<double> cos_t(size_t(c.keys * half)), sin_t(cos_t.size()), xpos_t(cos_t.size());
  for (int64_t j = 0; j < c.keys; j++)
    for (int f = 0; f < half; f++) {
      const double angle = double(j) * double(in.inv_freq[size_t(f)]);
      cos_t[size_t(j * half + f)] = std::cos(angle);
      sin_t[size_t(j * half + f)] = std::sin(angle);
      const double zeta = (2.0 * f + 0.4 * kRotaryDim) / (1.4 * kRotaryDim);
      xpos_t[size_t(j * half + f)] = std::pow(zeta, double(j) / kXposScaleBase);  // by distance p − j
    }
  std::vector<double> out(size_t(c.seqs * kHeads * kHeadDim)), scores(size_t(c.keys)), qr(kHeadDim), kr(kHeadDim);
  for (int64_t s = 0; s < c.seqs; s++) {
    const int64_t p = c.keys - 1;  // the sequence's one query is its last position
    for (int h = 0; h < kHeads; h++) {
      const int g = h % kKvHeads;
      const uint16_t* qrow = in.q.data() + (s * kHeads + h) * kHeadDim;
      for (int d = 0; d < kHeadDim; d++) qr[size_t(d)] = bf16_to_float(qrow[d]);
      for (int f = 0; f < half; f++) {
        const double x1 = qr[size_t(f)], x2 = qr[size_t(f + half)];
        const double co = cos_t[size_t(p * half + f)], si = sin_t[size_t(p * half + f)];
        qr[size_t(f)] = x1 * co - x2 * si;
        qr[size_t(f + half)] = x2 * co + x1 * si;
      }
      const float* gs = in.key_scale.data() + h * kHeadDim;
      double best = -INFINITY;
      for (int64_t j = 0; j <= p; j++) {
        const int64_t block = in.tables[size_t(s * blocks_per + j / kBlockSize)];
        const uint16_t* k = in.k.data() + ((block * kBlockSize + j % kBlockSize) * kKvHeads + g) * kHeadDim;
        for (int d = 0; d < kHeadDim; d++) kr[size_t(d)] = double(bf16_to_float(k[d])) * double(gs[d]);
        double dot = 0;
        for (int f = 0; f < half; f++) {
          const double x1 = kr[size_t(f)], x2 = kr[size_t(f + half)];
          const double co = cos_t[size_t(j * half + f)], si = sin_t[size_t(j * half + f)];
          const double x = xpos_t[size_t((p - j) * half + f)];
          dot += x * (qr[size_t(f)] * (x1 * co - x2 * si) + qr[size_t(f + half)] * (x2 * co + x1 * si));
        }
        for (int d = kRotaryDim; d < kHeadDim; d++) dot += qr[size_t(d)] * kr[size_t(d)];
        scores[size_t(j)] = scale * dot - double(in.slopes[size_t(h)]) * double(p - j);
        best = std::max(best, scores[size_t(j)]);
      }
      double* o = out.data() + (s * kHeads + h) * kHeadDim;
      double sum = 0;
      for (int64_t j = 0; j <= p; j++) {
        const double w = std::exp(scores[size_t(j)] - best);
        sum += w;
        const int64_t block = in.tables[size_t(s * blocks_per + j / kBlockSize)];
        const uint16_t* v = in.v.data() + ((block * kBlockSize + j % kBlockSize) * kKvHeads + g) * kHeadDim;
        for (int d = 0; d < kHeadDim; d++) o[d] += w * bf16_to_float(v[d]);
      }
      for (int d = 0; d < kHeadDim; d++) o[d] /= sum;
    }
  }
  return out;
}

double value(const std::vector<uint16_t>& x, size_t i) { return bf16_to_float(x[i]); }
double value(const std::vector<double>& x, size_t i) { return x[i]; }

/** Largest |a − b| over the outputs (bf16 bits or float64); NaN (an unwritten row) counts as infinite. */
template <typename A, typename B>
double max_difference(const A& a, const B& b) {
  double most = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double d = std::fabs(value(a, i) - value(b, i));
    most = std::max(most, d == d ? d : INFINITY);
  }
  return most;
}

/** Largest |x| over bf16 outputs; NaN counts as infinite (then every comparison against it fails). */
double max_magnitude(const std::vector<uint16_t>& x) {
  double most = 0;
  for (size_t i = 0; i < x.size(); i++) {
    const double m = std::fabs(value(x, i));
    most = std::max(most, m == m ? m : INFINITY);
  }
  return most;
}

/** A shape's measurements. */
struct Result {
  PagedLaunch shape;
  bool is_rule;
  double us_call, us_kernel;  // µs per call: decode kernel + combine, decode kernel alone
  double difference;          // max abs difference from the rule's output over its largest |output|
};

}  // namespace

int main() {
  const cudaDeviceProp prop = device_properties();
  const int device_sms = prop.multiProcessorCount;
  // attention.cu raises the decode kernel's limit to the most its instantiation may take (rotary over the whole head
  // with a key scale), within the device's opt-in limit; a call above that limit goes to the general kernel there.
  const auto kernel = paged_decode_kernel<kHeadDim>;
  const size_t most_bytes = decode_layout(kHeadDim, kHeadDim, true).bytes;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(std::min(most_bytes, size_t(prop.sharedMemPerBlockOptin)))));
  const size_t smem = decode_layout(kHeadDim, kRotaryDim, true).bytes;  // andromeda-3b: rotary 64, key scale
  if (smem > size_t(prop.sharedMemPerBlockOptin)) {
    std::printf("# %s: the decode kernel needs %zu B of shared memory, the device allows %zu B: the engine runs the "
                "general kernel here (bench/cuda/paged-splits.cu)\n",
                prop.name, smem, size_t(prop.sharedMemPerBlockOptin));
    return 1;
  }
  cudaStream_t stream;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  int resident = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, kDecodeThreads, smem));
  cudaFuncAttributes attributes{};
  CHECK(cudaFuncGetAttributes(&attributes, kernel));
  // Local memory: the kernel's stack frame (ptxas -v: 32 B, no spill stores or loads at sm_90a).
  std::printf("# %s, %d SMs, L2 %d MB; decode kernel: %d registers, %zu B local memory a thread, %zu B shared "
              "memory, %d CTAs per SM\n",
              prop.name, device_sms, prop.l2CacheSize >> 20, attributes.numRegs, attributes.localSizeBytes, smem,
              resident);

  const Case cases[] = {{1, 2048, true}, {1, 32768, false}, {1, 100000, false}, {64, 2048, false}};
  bool failed = false;
  std::vector<std::string> summary;

  std::vector<float> slopes(kHeads, 0.f), inv_freq(kRotaryDim / 2);
  for (int h = 0; h < kAlibiHeads; h++) slopes[size_t(h)] = float(std::exp2(-8.0 * (h + 1) / kAlibiHeads));
  for (int f = 0; f < kRotaryDim / 2; f++)
    inv_freq[size_t(f)] = float(1.0 / std::pow(kRotaryBase, 2.0 * f / kRotaryDim));

  for (const Case& c : cases) {
    char name[64];
    std::snprintf(name, sizeof name, "%lld × %lld keys", (long long)c.seqs, (long long)c.keys);
    const int64_t blocks_per = (c.keys + kBlockSize - 1) / kBlockSize, blocks = c.seqs * blocks_per;
    const size_t pool_elems = size_t(blocks * kBlockSize * kKvHeads * kHeadDim);
    const size_t pool_bytes = pool_elems * sizeof(T);
    const int64_t kv_bytes = 2 * c.seqs * c.keys * kKvHeads * kHeadDim * int64_t(sizeof(T));  // K/V read per call
    const int copies = int(std::max<int64_t>(2, 2 * int64_t(prop.l2CacheSize) / int64_t(2 * pool_bytes) + 1));
    const int reps = std::max(kReps, copies);  // every copy read once per pass at least

    Random rng;
    Inputs in;
    in.q.resize(size_t(c.seqs * kHeads * kHeadDim));
    in.k.resize(pool_elems);
    in.v.resize(pool_elems);
    for (auto* buffer : {&in.q, &in.k, &in.v})
      for (auto& x : *buffer) x = float_to_bf16(rng.uniform());
    in.key_scale.resize(size_t(kHeads * kHeadDim));
    for (auto& x : in.key_scale) x = 1.f + 0.2f * rng.uniform();
    std::vector<int32_t> permutation(static_cast<size_t>(blocks));
    for (int64_t i = 0; i < blocks; i++) permutation[size_t(i)] = int32_t(i);
    for (int64_t i = blocks - 1; i > 0; i--) std::swap(permutation[size_t(i)], permutation[rng.next() % (i + 1)]);
    in.tables = permutation;  // sequence s: blocks s · blocks_per .. of the permutation
    in.slopes = slopes;
    in.inv_freq = inv_freq;
    std::vector<int32_t> query_start(size_t(c.seqs + 1)), context_lens(size_t(c.seqs), int32_t(c.keys));
    for (int64_t s = 0; s <= c.seqs; s++) query_start[size_t(s)] = int32_t(s);

    T *q, *out, *k_pools, *v_pools;
    float* key_scale;
    int32_t *d_query_start, *d_context_lens, *d_tables;
    CHECK(cudaMalloc(&q, in.q.size() * sizeof(T)));
    CHECK(cudaMalloc(&out, in.q.size() * sizeof(T)));
    CHECK(cudaMalloc(&k_pools, pool_bytes * copies));
    CHECK(cudaMalloc(&v_pools, pool_bytes * copies));
    CHECK(cudaMalloc(&key_scale, in.key_scale.size() * sizeof(float)));
    CHECK(cudaMalloc(&d_query_start, query_start.size() * sizeof(int32_t)));
    CHECK(cudaMalloc(&d_context_lens, context_lens.size() * sizeof(int32_t)));
    CHECK(cudaMalloc(&d_tables, in.tables.size() * sizeof(int32_t)));
    CHECK(cudaMemcpy(q, in.q.data(), in.q.size() * sizeof(T), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(k_pools, in.k.data(), pool_bytes, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(v_pools, in.v.data(), pool_bytes, cudaMemcpyHostToDevice));
    for (int copy = 1; copy < copies; copy++) {
      CHECK(cudaMemcpy(k_pools + pool_elems * copy, k_pools, pool_bytes, cudaMemcpyDeviceToDevice));
      CHECK(cudaMemcpy(v_pools + pool_elems * copy, v_pools, pool_bytes, cudaMemcpyDeviceToDevice));
    }
    CHECK(cudaMemcpy(key_scale, in.key_scale.data(), in.key_scale.size() * sizeof(float), cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_query_start, query_start.data(), query_start.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_context_lens, context_lens.data(), context_lens.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(d_tables, in.tables.data(), in.tables.size() * 4, cudaMemcpyHostToDevice));
    CHECK(cudaDeviceSynchronize());  // the copies ran on the legacy stream, the kernels run on `stream`

    andromeda::PagedAttentionArgs a{};
    a.total_queries = c.seqs;
    a.num_seqs = c.seqs;
    a.block_size = kBlockSize;
    a.num_blocks = blocks;
    a.max_blocks_per_seq = blocks_per;
    a.max_query_len = 1;
    a.max_context_len = c.keys;
    a.query_start = d_query_start;
    a.context_lens = d_context_lens;
    a.block_tables = d_tables;
    a.dtype = kDtypeBf16;
    a.heads = kHeads;
    a.kv_heads = kKvHeads;
    a.head_dim = kHeadDim;
    a.scale = 1 / std::sqrt(double(kHeadDim));
    a.alibi_slopes = slopes.data();
    a.rotary_dim = kRotaryDim;
    a.rotary_inv_freq = inv_freq.data();
    a.xpos_scale_base = kXposScaleBase;
    a.key_scale = reinterpret_cast<const char*>(key_scale);
    a.key_scale_dtype = 0;  // float32
    const AttentionParams base = attention_params(a, q, nullptr, nullptr, out);  // pools: per copy, below
    if (decode_bytes(base) != smem) {
      std::printf("FAIL %s: the call's decode shared memory (%zu B) is not the one checked above (%zu B)\n", name,
                  decode_bytes(base), smem);
      return 1;
    }

    // The shapes: the engine's rule, then the sweep's split counts up to one slice per split, each distinct
    // (splits, chunk) once, in order of splits.
    const int64_t units = a.num_seqs * a.kv_heads;
    const int64_t slices = (c.keys + kLaunchDecodeSliceKeys - 1) / kLaunchDecodeSliceKeys;
    const PagedLaunch rule =
        decode_launch_shape(units, a.max_context_len, a.total_queries, a.heads, a.head_dim, device_sms);
    std::vector<Result> results{Result{rule, true, 0, 0, 0}};
    for (int64_t wanted : kSweepSplits) {
      if (wanted > slices) break;
      const PagedLaunch l = sweep_shape(c.keys, wanted);
      const bool seen = std::any_of(results.begin(), results.end(), [&](const Result& r) {
        return r.shape.splits == l.splits && r.shape.chunk == l.chunk;
      });
      if (!seen) results.push_back(Result{l, false, 0, 0, 0});
    }
    std::sort(results.begin(), results.end(), [](const Result& x, const Result& y) {
      return x.shape.splits != y.shape.splits ? x.shape.splits < y.shape.splits : x.shape.chunk < y.shape.chunk;
    });

    // One graph of `reps` calls, each on the next pool copy, recorded by `record`: µs per call, the median of
    // kBatches replays after a warm-up.
    auto time_graph = [&](const std::vector<AttentionParams>& params, RecordCall record) {
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      for (int rep = 0; rep < reps; rep++) record(params[size_t(rep % copies)], stream);
      CHECK(cudaGetLastError());
      CHECK(cudaStreamEndCapture(stream, &graph));
      CHECK(cudaGraphInstantiate(&exec, graph, 0));
      CHECK(cudaGraphLaunch(exec, stream));  // warm-up
      cudaEvent_t start, stop;
      CHECK(cudaEventCreate(&start));
      CHECK(cudaEventCreate(&stop));
      std::vector<double> batches;
      for (int b = 0; b < kBatches; b++) {
        CHECK(cudaEventRecord(start, stream));
        CHECK(cudaGraphLaunch(exec, stream));
        CHECK(cudaEventRecord(stop, stream));
        CHECK(cudaEventSynchronize(stop));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, start, stop));
        batches.push_back(1000.0 * ms / reps);
      }
      CHECK(cudaGetLastError());
      CHECK(cudaEventDestroy(start));
      CHECK(cudaEventDestroy(stop));
      CHECK(cudaGraphExecDestroy(exec));
      CHECK(cudaGraphDestroy(graph));
      std::sort(batches.begin(), batches.end());
      return batches[kBatches / 2];
    };

    // One shape: its output (from pool copy 0) into `result`, and its times per call, whole and kernel alone.
    auto measure = [&](Result& r, std::vector<uint16_t>& result) {
      const PagedLaunch& l = r.shape;
      float* part_out = nullptr;
      float2* part_stats = nullptr;
      if (l.splits > 1) {
        CHECK(cudaMalloc(&part_out, size_t(a.total_queries * a.heads * l.splits * kHeadDim) * sizeof(float)));
        CHECK(cudaMalloc(&part_stats, size_t(a.total_queries * a.heads * l.splits) * sizeof(float2)));
      }
      std::vector<AttentionParams> params(size_t(copies), base);
      for (int copy = 0; copy < copies; copy++) {
        AttentionParams& p = params[size_t(copy)];
        p.key_pool = k_pools + pool_elems * copy;
        p.value_pool = v_pools + pool_elems * copy;
        p.splits = int(l.splits);
        p.chunk = int(l.chunk);
        p.part_out = part_out;
        p.part_stats = part_stats;
      }
      CHECK(cudaMemsetAsync(out, 0xff, in.q.size() * sizeof(T), stream));  // NaN where nothing is written
      launch_call(params[0], stream);
      CHECK(cudaGetLastError());
      CHECK(cudaStreamSynchronize(stream));
      result.resize(in.q.size());
      CHECK(cudaMemcpy(result.data(), out, result.size() * sizeof(T), cudaMemcpyDeviceToHost));

      r.us_call = time_graph(params, launch_call);
      // With one split the call is the kernel alone: its graph would be the same graph, timed again.
      r.us_kernel = l.splits > 1 ? time_graph(params, launch_decode) : r.us_call;
      if (part_out) CHECK(cudaFree(part_out));
      if (part_stats) CHECK(cudaFree(part_stats));
    };

    std::printf("\n## %s: K+V %.1f MB per call, %d pool copies (%.0f MB), %lld slices of %lld keys\n", name,
                kv_bytes / 1e6, copies, 2.0 * pool_bytes * copies / 1e6, (long long)slices,
                (long long)kLaunchDecodeSliceKeys);
    // The rule first: its output is what every other shape is compared with.
    const size_t rule_index =
        size_t(std::find_if(results.begin(), results.end(), [](const Result& r) { return r.is_rule; }) -
               results.begin());
    std::vector<uint16_t> expected, got;
    measure(results[rule_index], expected);
    const double expected_magnitude = max_magnitude(expected);
    if (!(expected_magnitude < INFINITY)) {
      failed = true;
      std::printf("FAIL %s: the rule's output has NaN or infinite values\n", name);
    }
    if (c.reference) {
      const std::vector<double> want = reference(c, in);
      const double error = max_difference(expected, want);
      const bool ok = error < kReferenceLimit;
      failed |= !ok;
      std::printf("%s %s: rule vs float64 reference: max abs diff %.2e (limit %.0e)\n", ok ? "PASS" : "FAIL", name,
                  error, kReferenceLimit);
    }
    for (size_t i = 0; i < results.size(); i++) {
      if (i == rule_index) continue;
      measure(results[i], got);
      results[i].difference = max_difference(expected, got) / expected_magnitude;
    }

    size_t best = 0;
    for (size_t i = 1; i < results.size(); i++)
      if (results[i].us_call < results[best].us_call) best = i;
    double largest = 0;
    std::printf("| case | splits | chunk | slices/warp | waves | µs whole | µs kernel | µs combine | diff vs rule "
                "| |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (size_t i = 0; i < results.size(); i++) {
      const Result& r = results[i];
      largest = std::max(largest, r.difference);
      if (!(r.difference < kShapeLimit)) {
        failed = true;
        std::printf("FAIL %s: %lld splits of %lld keys differ from the rule by %.2e of its largest output (limit "
                    "%.0e)\n",
                    name, (long long)r.shape.splits, (long long)r.shape.chunk, r.difference, kShapeLimit);
      }
      // A warp walks every kDecodeWarps-th slice of its split; the grid runs in waves of one CTA per multiprocessor.
      const int64_t slices_per_warp =
          (r.shape.chunk / kLaunchDecodeSliceKeys + kLaunchDecodeWarps - 1) / kLaunchDecodeWarps;
      const int64_t waves = (units * r.shape.splits + device_sms - 1) / device_sms;
      const char* mark = r.is_rule ? (i == best ? "rule, **best**" : "rule") : (i == best ? "**best**" : "");
      std::printf("| %s | %lld | %lld | %lld | %lld | %.2f | %.2f | %.2f | %.1e | %s |\n", name,
                  (long long)r.shape.splits, (long long)r.shape.chunk, (long long)slices_per_warp, (long long)waves,
                  r.us_call, r.us_kernel, r.us_call - r.us_kernel, r.difference, mark);
    }
    std::printf("%s %s: every shape within %.0e of the rule's largest output (largest %.2e)\n",
                largest < kShapeLimit ? "PASS" : "FAIL", name, kShapeLimit, largest);
    const Result& fastest = results[best];
    const Result& ruled = results[rule_index];
    char line[256];
    std::snprintf(line, sizeof line,
                  "%s: best vs rule: %lld splits of %lld keys %.2f µs vs %lld splits of %lld keys %.2f µs (%+.1f%%)",
                  name, (long long)fastest.shape.splits, (long long)fastest.shape.chunk, fastest.us_call,
                  (long long)ruled.shape.splits, (long long)ruled.shape.chunk, ruled.us_call,
                  100.0 * (fastest.us_call - ruled.us_call) / ruled.us_call);
    std::printf("%s\n", line);
    summary.push_back(line);

    for (void* ptr : {static_cast<void*>(q), static_cast<void*>(out), static_cast<void*>(k_pools),
                      static_cast<void*>(v_pools), static_cast<void*>(key_scale), static_cast<void*>(d_query_start),
                      static_cast<void*>(d_context_lens), static_cast<void*>(d_tables)})
      CHECK(cudaFree(ptr));
  }
  CHECK(cudaStreamDestroy(stream));
  std::printf("\n");
  for (const std::string& line : summary) std::printf("%s\n", line.c_str());
  std::printf("%s\n", failed ? "FAIL" : "PASS");
  return failed ? 1 : 0;
}
