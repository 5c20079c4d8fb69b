// The decode attention problem that bench/cuda/paged-splits.cu (the general paged split-KV kernel) and
// bench/cuda/decode-splits.cu (the decode kernel) both time, kept in one place so that their numbers and checks are
// of the same thing: andromeda-3b's decode shapes — 24 query heads × 128 over one KV head, bf16, key scale (float32),
// rotary 64 with xPos (scale base 512), ALiBi on 12 of the 24 heads, blocks of 32 positions, block tables a random
// permutation of the pool's blocks. It holds the cases' inputs and their upload (the pools copied until the copies
// cycle over more than twice the L2), the engine's call arguments, one set of kernel parameters per pool copy and the
// split scratch, one checked call, the timing of a captured graph of calls, the float64 attention with its check, and
// the closing summary. Each program keeps its own launches, its sweep and its table. Each is one translation unit,
// so all here has internal linkage (an anonymous namespace), as it had in both files before it moved here.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.h"
#include "cuda/paged/attention_kernel.cuh"
#include "cuda/paged/heuristics.h"

namespace {

using andromeda::bf16_to_float;
using andromeda::float_to_bf16;
using andromeda::cuda::paged::AttentionParams;
using andromeda::cuda::paged::PagedLaunch;

using T = __nv_bfloat16;
constexpr int kHeads = 24, kKvHeads = 1, kHeadDim = 128, kRotaryDim = 64, kBlockSize = 32, kAlibiHeads = 12;
constexpr double kXposScaleBase = 512, kRotaryBase = 10000;
constexpr int kDtypeBf16 = 2;  // andromeda::DType
constexpr int kReps = 200, kBatches = 5;  // calls per timed graph, graphs timed (the median is reported)
constexpr double kReferenceLimit = 2e-2;  // the engine's rule's output vs float64: max abs difference (bf16 outputs)

struct Case {
  int64_t seqs, keys;  // sequences of one query each, keys per sequence (the query's own included)
  bool reference;      // compare the engine's rule's output with the float64 attention
};

struct Random {
  uint32_t state = 12345;
  uint32_t next() {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    return state;
  }
  float uniform() { return float(next()) / 4294967296.f * 2.f - 1.f; }  // [−1, 1)
};

/** A case's sizes: its pools, the K/V bytes one call reads, and the pool copies and calls of a timed graph. */
struct CaseSizes {
  int64_t blocks_per_seq, blocks;
  size_t pool_elems, pool_bytes;  // one copy of one pool (K or V)
  int64_t kv_bytes;               // K and V read per call
  int copies;                     // pool copies, together more than twice the L2 (at least 2)
  int reps;                       // calls per timed graph: every copy read once per pass at least
};

CaseSizes case_sizes(const Case& c, const cudaDeviceProp& prop) {
  CaseSizes z{};
  z.blocks_per_seq = (c.keys + kBlockSize - 1) / kBlockSize;
  z.blocks = c.seqs * z.blocks_per_seq;
  z.pool_elems = size_t(z.blocks * kBlockSize * kKvHeads * kHeadDim);
  z.pool_bytes = z.pool_elems * sizeof(T);
  z.kv_bytes = 2 * c.seqs * c.keys * kKvHeads * kHeadDim * int64_t(sizeof(T));
  z.copies = int(std::max<int64_t>(2, 2 * int64_t(prop.l2CacheSize) / int64_t(2 * z.pool_bytes) + 1));
  z.reps = std::max(kReps, z.copies);
  return z;
}

/** Host copies of a case's inputs (bf16 bits, pool copy 0). */
struct Inputs {
  std::vector<uint16_t> q, k, v;    // q [seqs, heads, D]; pools [blocks, block size, kv heads, D]
  std::vector<int32_t> tables;      // [seqs, blocks per sequence]
  std::vector<float> key_scale;     // [heads, D]
  std::vector<float> slopes, inv_freq;
};

/**
 * A case's inputs, the same in both programs for the same case (a fresh generator each): q and the pools uniform in
 * [−1, 1), the key scale in [0.8, 1.2), the block tables a random permutation of the pool's blocks (sequence s takes
 * blocks s · blocks per sequence .. of it), ALiBi slopes 2^(−8(h+1)/12) on the first 12 heads and 0 on the others,
 * and the rotary frequencies 10000^(−2f/64).
 */
Inputs make_inputs(const Case& c, const CaseSizes& z) {
  Random rng;
  Inputs in;
  in.q.resize(size_t(c.seqs * kHeads * kHeadDim));
  in.k.resize(z.pool_elems);
  in.v.resize(z.pool_elems);
  for (auto* buffer : {&in.q, &in.k, &in.v})
    for (auto& x : *buffer) x = float_to_bf16(rng.uniform());
  in.key_scale.resize(size_t(kHeads * kHeadDim));
  for (auto& x : in.key_scale) x = 1.f + 0.2f * rng.uniform();
  in.tables.resize(size_t(z.blocks));
  for (int64_t i = 0; i < z.blocks; i++) in.tables[size_t(i)] = int32_t(i);
  for (int64_t i = z.blocks - 1; i > 0; i--) std::swap(in.tables[size_t(i)], in.tables[rng.next() % (i + 1)]);
  in.slopes.assign(kHeads, 0.f);
  for (int h = 0; h < kAlibiHeads; h++) in.slopes[size_t(h)] = float(std::exp2(-8.0 * (h + 1) / kAlibiHeads));
  in.inv_freq.resize(kRotaryDim / 2);
  for (int f = 0; f < kRotaryDim / 2; f++)
    in.inv_freq[size_t(f)] = float(1.0 / std::pow(kRotaryBase, 2.0 * f / kRotaryDim));
  return in;
}

/**
 * The attention in float64, written out as the CPU engine defines it (native/cpu/paged_attention_impl.h): for
 * query position p and key position j of sequence s, head h (KV head h mod kvHeads), on each rotary pair
 * (f, f + r/2) with ζ_f = (2f + 0.4r) / (1.4r),
 *   q' = R(p·θ_f) q,  k' = R(j·θ_f) (k ⊙ keyScale[h]),  x = ζ_f^((p − j) / B) on the pair (1 past the rotary ones),
 *   score = scale · Σ q'·x·k' − slope_h · (p − j),  out = Σ_j softmax(score)_j · v_j   over keys j ≤ p.
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

/**
 * Checks `output` (the engine's rule's, `label` in the line) against the float64 attention and prints PASS or FAIL
 * with the largest difference; whether it is within kReferenceLimit.
 */
bool matches_reference(const Case& c, const Inputs& in, const std::vector<uint16_t>& output, const char* name,
                       const char* label) {
  const std::vector<double> want = reference(c, in);
  const double error = max_difference(output, want);
  const bool ok = error < kReferenceLimit;
  std::printf("%s %s: %s vs float64 reference: max abs diff %.2e (limit %.0e)\n", ok ? "PASS" : "FAIL", name, label,
              error, kReferenceLimit);
  return ok;
}

/** A case's device buffers: q, out, `copies` back-to-back copies of each pool, the key scale and the batch. */
struct DeviceInputs {
  T *q, *out, *k_pools, *v_pools;
  float* key_scale;
  int32_t *query_start, *context_lens, *tables;
};

/** Allocates a case's device buffers and uploads `in`, pool copy 0 then the others from it on the device. */
DeviceInputs upload(const Case& c, const CaseSizes& z, const Inputs& in) {
  // One query per sequence: sequence s owns query row s and all c.keys keys.
  std::vector<int32_t> query_start(size_t(c.seqs + 1)), context_lens(size_t(c.seqs), int32_t(c.keys));
  for (int64_t s = 0; s <= c.seqs; s++) query_start[size_t(s)] = int32_t(s);

  DeviceInputs d{};
  CHECK(cudaMalloc(&d.q, in.q.size() * sizeof(T)));
  CHECK(cudaMalloc(&d.out, in.q.size() * sizeof(T)));
  CHECK(cudaMalloc(&d.k_pools, z.pool_bytes * z.copies));
  CHECK(cudaMalloc(&d.v_pools, z.pool_bytes * z.copies));
  CHECK(cudaMalloc(&d.key_scale, in.key_scale.size() * sizeof(float)));
  CHECK(cudaMalloc(&d.query_start, query_start.size() * sizeof(int32_t)));
  CHECK(cudaMalloc(&d.context_lens, context_lens.size() * sizeof(int32_t)));
  CHECK(cudaMalloc(&d.tables, in.tables.size() * sizeof(int32_t)));
  CHECK(cudaMemcpy(d.q, in.q.data(), in.q.size() * sizeof(T), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d.k_pools, in.k.data(), z.pool_bytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d.v_pools, in.v.data(), z.pool_bytes, cudaMemcpyHostToDevice));
  for (int copy = 1; copy < z.copies; copy++) {
    CHECK(cudaMemcpy(d.k_pools + z.pool_elems * copy, d.k_pools, z.pool_bytes, cudaMemcpyDeviceToDevice));
    CHECK(cudaMemcpy(d.v_pools + z.pool_elems * copy, d.v_pools, z.pool_bytes, cudaMemcpyDeviceToDevice));
  }
  CHECK(cudaMemcpy(d.key_scale, in.key_scale.data(), in.key_scale.size() * sizeof(float), cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d.query_start, query_start.data(), query_start.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d.context_lens, context_lens.data(), context_lens.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(d.tables, in.tables.data(), in.tables.size() * 4, cudaMemcpyHostToDevice));
  CHECK(cudaDeviceSynchronize());  // the copies ran on the legacy stream, the kernels run on the program's stream
  return d;
}

void free_device_inputs(const DeviceInputs& d) {
  for (void* ptr : {static_cast<void*>(d.q), static_cast<void*>(d.out), static_cast<void*>(d.k_pools),
                    static_cast<void*>(d.v_pools), static_cast<void*>(d.key_scale), static_cast<void*>(d.query_start),
                    static_cast<void*>(d.context_lens), static_cast<void*>(d.tables)})
    CHECK(cudaFree(ptr));
}

/**
 * The engine's call for a case (Engine.pagedAttention's arguments): one query per sequence at its last position,
 * ALiBi, rotary with xPos and a float32 key scale. The slopes and frequencies point into `in` (host memory, read by
 * attention_params()).
 */
andromeda::PagedAttentionArgs call_args(const Case& c, const CaseSizes& z, const Inputs& in, const DeviceInputs& d) {
  andromeda::PagedAttentionArgs a{};
  a.total_queries = c.seqs;
  a.num_seqs = c.seqs;
  a.block_size = kBlockSize;
  a.num_blocks = z.blocks;
  a.max_blocks_per_seq = z.blocks_per_seq;
  a.max_query_len = 1;
  a.max_context_len = c.keys;
  a.query_start = d.query_start;
  a.context_lens = d.context_lens;
  a.block_tables = d.tables;
  a.dtype = kDtypeBf16;
  a.heads = kHeads;
  a.kv_heads = kKvHeads;
  a.head_dim = kHeadDim;
  a.scale = 1 / std::sqrt(double(kHeadDim));
  a.alibi_slopes = in.slopes.data();
  a.rotary_dim = kRotaryDim;
  a.rotary_inv_freq = in.inv_freq.data();
  a.xpos_scale_base = kXposScaleBase;
  a.key_scale = reinterpret_cast<const char*>(d.key_scale);
  a.key_scale_dtype = 0;  // float32
  return a;
}

/** A shape's scratch for the combine: partial rows and their (max, sum); null with one split (written directly). */
struct SplitScratch {
  float* part_out = nullptr;
  float2* part_stats = nullptr;
};

SplitScratch alloc_split_scratch(const andromeda::PagedAttentionArgs& a, const PagedLaunch& l) {
  SplitScratch s;
  if (l.splits > 1) {
    CHECK(cudaMalloc(&s.part_out, size_t(a.total_queries * a.heads * l.splits * kHeadDim) * sizeof(float)));
    CHECK(cudaMalloc(&s.part_stats, size_t(a.total_queries * a.heads * l.splits) * sizeof(float2)));
  }
  return s;
}

void free_split_scratch(const SplitScratch& s) {
  if (s.part_out) CHECK(cudaFree(s.part_out));
  if (s.part_stats) CHECK(cudaFree(s.part_stats));
}

/** The call's parameters once per pool copy: `base` on copy i's pools, with the shape's splits, chunk and scratch. */
std::vector<AttentionParams> params_per_copy(const AttentionParams& base, const CaseSizes& z, const DeviceInputs& d,
                                             const PagedLaunch& l, const SplitScratch& scratch) {
  std::vector<AttentionParams> params(size_t(z.copies), base);
  for (int copy = 0; copy < z.copies; copy++) {
    AttentionParams& p = params[size_t(copy)];
    p.key_pool = d.k_pools + z.pool_elems * copy;
    p.value_pool = d.v_pools + z.pool_elems * copy;
    p.splits = int(l.splits);
    p.chunk = int(l.chunk);
    p.part_out = scratch.part_out;
    p.part_stats = scratch.part_stats;
  }
  return params;
}

/**
 * One call, recorded by `record` on `stream` with `p`, and its output (`out_elems` bf16 values) into `result`. The
 * output is filled with NaN first, so a row the call does not write fails every comparison.
 */
template <typename Record>
void checked_call(const AttentionParams& p, Record record, const DeviceInputs& d, size_t out_elems,
                  cudaStream_t stream, std::vector<uint16_t>& result) {
  CHECK(cudaMemsetAsync(d.out, 0xff, out_elems * sizeof(T), stream));  // NaN where nothing is written
  record(p, stream);
  CHECK(cudaGetLastError());
  CHECK(cudaStreamSynchronize(stream));
  result.resize(out_elems);
  CHECK(cudaMemcpy(result.data(), d.out, result.size() * sizeof(T), cudaMemcpyDeviceToHost));
}

/**
 * µs per call: `reps` calls recorded by `record`, call i on params[i mod copies], captured as one CUDA graph (decode
 * replays a captured step: no host launch cost between the calls), the median of kBatches replays after a warm-up.
 */
template <typename Record>
double time_graph(const std::vector<AttentionParams>& params, Record record, int reps, cudaStream_t stream) {
  const int copies = int(params.size());
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
}

/** The closing lines: a blank line, each case's best-vs-rule line, then PASS or FAIL; the exit status. */
int print_summary(const std::vector<std::string>& summary, bool failed) {
  std::printf("\n");
  for (const std::string& line : summary) std::printf("%s\n", line.c_str());
  std::printf("%s\n", failed ? "FAIL" : "PASS");
  return failed ? 1 : 0;
}

}  // namespace
