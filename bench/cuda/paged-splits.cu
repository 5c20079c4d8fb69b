// Times the paged split-KV attention (native/cuda/paged/attention_kernel.cuh, attention and combine together) at
// the engine's split rule (heuristics.h: the wave-cost rule, the first row of each table) and at every fixed CTA
// target of a sweep (fewest keys per split × CTAs per multiprocessor aimed at) for andromeda-3b's
// decode shapes: 24 query heads × 128 over one KV head, bf16, key scale, rotary 64 with xPos (scale base 512),
// ALiBi on 12 of the 24 heads, blocks of 32 positions, block tables a random permutation of the pool's blocks. It
// checks every policy's output against the engine's rule's, and the rule's against a float64
// attention on the host for the 2,048-key cases, and prints the fastest policy per case. Built and run alone:
//
//   nvcc -O3 -std=c++17 -arch=sm_90a -I native bench/cuda/paged-splits.cu -o /tmp/paged-splits && /tmp/paged-splits
//
// The launches are those of attention.cu (paged_attention() and launch<T, D>), on a stream of this program, with
// scratch from cudaMalloc. Times: 200 back-to-back calls captured as one CUDA graph (decode replays a captured step),
// the median of 5 replays, after one for warm-up; each call reads a different copy of the pools, cycling over more
// than twice the L2, as decode does (a layer's K/V are read once per step, all layers' together far more than L2).
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
constexpr double kPolicyLimit = 2e-2, kReferenceLimit = 2e-2;  // max abs difference of bf16 outputs
using Smem = AttentionSmem<T, kHeadDim>;

static_assert(kLaunchRowsPerBlock == kRows && kLaunchKeysPerTile == kKeys, "heuristics.h uses the kernel's tiles");

struct Case {
  int64_t seqs, keys;  // sequences of one query each, keys per sequence (the query's own included)
  bool reference;      // compare the default policy with the float64 attention
};

struct Random {
  uint32_t state = 12345;
  uint32_t next() {
    state ^= state << 13, state ^= state >> 17, state ^= state << 5;
    return state;
  }
  float uniform() { return float(next()) / 4294967296.f * 2.f - 1.f; }  // [−1, 1)
};

/** The kernels' parameters as paged_attention() (attention.cu) fills them, before the launch shape. */
/** launch<T, D> of attention.cu: the split kernel, then with several splits the combine. */
void launch(const AttentionParams& p, const PagedLaunch& l, cudaStream_t stream) {
  const dim3 grid(unsigned(l.splits), unsigned(l.row_blocks), unsigned(p.batch.num_seqs * p.kv_heads));
  paged_attention_kernel<T, kHeadDim><<<grid, kAttentionThreads, Smem::bytes(p.operand_ld), stream>>>(p);
  if (l.splits > 1) {
    const dim3 combine_grid(unsigned(p.batch.max_query_len * p.heads), unsigned(p.batch.num_seqs));
    paged_attention_combine_kernel<T, kHeadDim><<<combine_grid, kCombineThreads, 0, stream>>>(p);
  }
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

struct Result {
  PagedLaunchPolicy policy;
  PagedLaunch shape;
  double us, difference;
};

}  // namespace

int main() {
  const cudaDeviceProp prop = device_properties();
  const int device_sms = prop.multiProcessorCount;
  // attention.cu raises the kernel's shared-memory limit to its largest Q̃/K̃ stride (key_dim ≤ 2D).
  const auto kernel = paged_attention_kernel<T, kHeadDim>;
  CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             int(Smem::bytes(operand_ld<T>(2 * kHeadDim)))));
  const int smem = int(Smem::bytes(operand_ld<T>(kHeadDim + kRotaryDim)));
  cudaStream_t stream;
  CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  int resident = 0;
  CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, kAttentionThreads, smem));
  std::printf("# %s, %d SMs, L2 %d MB; attention kernel: %d B shared memory, %d CTAs per SM\n", prop.name, device_sms,
              prop.l2CacheSize >> 20, smem, resident);

  const Case cases[] = {{1, 2048, true}, {1, 32768, false}, {1, 100000, false}, {64, 2048, true}};
  const int64_t min_keys[] = {32, 64, 128, 256, 512, 1024};
  const int64_t ctas_per_sm[] = {1, 2, 4};
  const PagedLaunchPolicy fallback = kDefaultPagedLaunchPolicy;
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
    AttentionParams base = attention_params(a, q, nullptr, nullptr, out);  // pools: per copy, below
    base.operand_ld = operand_ld<T>(base.key_dim);

    // One policy: its launch shape, its output (from pool copy 0), and its time per call.
    auto measure = [&](PagedLaunchPolicy policy, std::vector<uint16_t>& result) {
      const PagedLaunch l = paged_launch_shape(a.num_seqs, a.kv_heads, a.heads / a.kv_heads, a.max_query_len,
                                               a.max_context_len, a.total_queries, a.heads, a.head_dim, device_sms,
                                               policy);
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
      launch(params[0], l, stream);
      CHECK(cudaGetLastError());
      CHECK(cudaStreamSynchronize(stream));
      result.resize(in.q.size());
      CHECK(cudaMemcpy(result.data(), out, result.size() * sizeof(T), cudaMemcpyDeviceToHost));

      // The timed calls as one graph (decode replays a captured step): no host launch cost between them.
      cudaGraph_t graph;
      cudaGraphExec_t exec;
      CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      for (int rep = 0; rep < reps; rep++) launch(params[size_t(rep % copies)], l, stream);
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
      if (part_out) CHECK(cudaFree(part_out));
      if (part_stats) CHECK(cudaFree(part_stats));
      std::sort(batches.begin(), batches.end());
      return Result{policy, l, batches[kBatches / 2], 0};
    };

    std::printf("\n## %s: K+V %.1f MB per call, %d pool copies (%.0f MB)\n", name, kv_bytes / 1e6, copies,
                2.0 * pool_bytes * copies / 1e6);
    std::vector<uint16_t> expected, got;
    const Result fallback_result = measure(fallback, expected);
    if (c.reference) {
      const std::vector<double> want = reference(c, in);
      const double error = max_difference(expected, want);
      const bool ok = error < kReferenceLimit;
      failed |= !ok;
      std::printf("%s %s: default policy vs float64 reference: max abs diff %.2e (limit %.0e)\n", ok ? "PASS" : "FAIL",
                  name, error, kReferenceLimit);
    }
    // Row 0: the engine's rule (wave cost); then fixed CTA targets, each split count the sweep reaches.
    std::vector<Result> results{fallback_result};
    results[0].difference = 0;
    for (int64_t m : min_keys)
      for (int64_t cps : ctas_per_sm) {
        Result r = measure(PagedLaunchPolicy{m, cps, SplitRule::kFillTarget, 0}, got);
        r.difference = max_difference(expected, got);
        results.push_back(r);
      }
    size_t best = 0;
    for (size_t i = 1; i < results.size(); i++)
      if (results[i].us < results[best].us) best = i;
    double largest = 0;
    std::printf("| min keys/split | CTAs/SM | splits | chunk | CTAs | µs | GB/s | max diff vs default | |\n");
    std::printf("|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (size_t i = 0; i < results.size(); i++) {
      const Result& r = results[i];
      const bool is_default = i == 0;
      const bool ok = r.difference < kPolicyLimit;
      largest = std::max(largest, r.difference);
      if (!ok) {
        failed = true;
        std::printf("FAIL %s: policy (%lld, %lld) differs from the default by %.2e (limit %.0e)\n", name,
                    (long long)r.policy.min_keys_per_split, (long long)r.policy.ctas_per_sm, r.difference,
                    kPolicyLimit);
      }
      const long long ctas = (long long)(r.shape.splits * r.shape.row_blocks * c.seqs * kKvHeads);
      std::printf("| %lld | %lld | %lld | %lld | %lld | %.2f | %.0f | %.1e | %s%s |\n",
                  (long long)r.policy.min_keys_per_split, (long long)r.policy.ctas_per_sm, (long long)r.shape.splits,
                  (long long)r.shape.chunk, ctas, r.us, kv_bytes / r.us / 1e3, r.difference,
                  i == best ? "**best**" : "", is_default ? (i == best ? ", default" : "default") : "");
    }
    std::printf("%s %s: every policy within %.0e of the default (largest %.2e)\n",
                largest < kPolicyLimit ? "PASS" : "FAIL", name, kPolicyLimit, largest);
    char line[256];
    std::snprintf(line, sizeof line, "%s: best policy (%lld keys, %lld CTAs/SM) vs default: %.2f µs vs %.2f µs", name,
                  (long long)results[best].policy.min_keys_per_split, (long long)results[best].policy.ctas_per_sm,
                  results[best].us, fallback_result.us);
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
