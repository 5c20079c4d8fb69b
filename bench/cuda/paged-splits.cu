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
// The problem, its inputs and upload, the float64 attention and the graph timing are paged_problem.h's, which
// bench/cuda/decode-splits.cu times too.
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
#include "paged_problem.h"

using namespace andromeda::cuda::paged;

namespace {

// andromeda-3b's problem, its inputs, the float64 reference and the graph timing: paged_problem.h.
constexpr double kPolicyLimit = 2e-2;  // a policy's output vs the default's: max abs difference of bf16 outputs
using Smem = AttentionSmem<T, kHeadDim>;

static_assert(kLaunchRowsPerBlock == kRows && kLaunchKeysPerTile == kKeys, "heuristics.h uses the kernel's tiles");

/** launch<T, D> of attention.cu: the split kernel, then with several splits the combine. */
void launch(const AttentionParams& p, const PagedLaunch& l, cudaStream_t stream) {
  const dim3 grid(unsigned(l.splits), unsigned(l.row_blocks), unsigned(p.batch.num_seqs * p.kv_heads));
  paged_attention_kernel<T, kHeadDim><<<grid, kAttentionThreads, Smem::bytes(p.operand_ld), stream>>>(p);
  if (l.splits > 1) {
    const dim3 combine_grid(unsigned(p.batch.max_query_len * p.heads), unsigned(p.batch.num_seqs));
    paged_attention_combine_kernel<T, kHeadDim, 16><<<combine_grid, kCombineThreads, 0, stream>>>(p);
  }
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

  for (const Case& c : cases) {
    char name[64];
    std::snprintf(name, sizeof name, "%lld × %lld keys", (long long)c.seqs, (long long)c.keys);
    const CaseSizes sizes = case_sizes(c, prop);
    const Inputs in = make_inputs(c, sizes);
    const DeviceInputs dev = upload(c, sizes, in);
    const andromeda::PagedAttentionArgs a = call_args(c, sizes, in, dev);
    AttentionParams base = attention_params(a, dev.q, nullptr, nullptr, dev.out);  // pools: per copy, below
    base.operand_ld = operand_ld<T>(base.key_dim);

    // One policy: its launch shape, its output (from pool copy 0), and its time per call.
    auto measure = [&](PagedLaunchPolicy policy, std::vector<uint16_t>& result) {
      const PagedLaunch l = paged_launch_shape(a.num_seqs, a.kv_heads, a.heads / a.kv_heads, a.max_query_len,
                                               a.max_context_len, a.total_queries, a.heads, a.head_dim, device_sms,
                                               policy);
      const SplitScratch scratch = alloc_split_scratch(a, l);
      const std::vector<AttentionParams> params = params_per_copy(base, sizes, dev, l, scratch);
      const auto record = [&l](const AttentionParams& p, cudaStream_t s) { launch(p, l, s); };
      checked_call(params[0], record, dev, in.q.size(), stream, result);
      const double us = time_graph(params, record, sizes.reps, stream);
      free_split_scratch(scratch);
      return Result{policy, l, us, 0};
    };

    std::printf("\n## %s: K+V %.1f MB per call, %d pool copies (%.0f MB)\n", name, sizes.kv_bytes / 1e6,
                sizes.copies, 2.0 * sizes.pool_bytes * sizes.copies / 1e6);
    std::vector<uint16_t> expected, got;
    const Result fallback_result = measure(fallback, expected);
    if (c.reference) failed |= !matches_reference(c, in, expected, name, "default policy");
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
                  (long long)r.shape.chunk, ctas, r.us, sizes.kv_bytes / r.us / 1e3, r.difference,
                  i == best ? "**best**" : "", is_default ? (i == best ? ", default" : "default") : "");
    }
    std::printf("%s %s: every policy within %.0e of the default (largest %.2e)\n",
                largest < kPolicyLimit ? "PASS" : "FAIL", name, kPolicyLimit, largest);
    char line[256];
    std::snprintf(line, sizeof line, "%s: best policy (%lld keys, %lld CTAs/SM) vs default: %.2f µs vs %.2f µs", name,
                  (long long)results[best].policy.min_keys_per_split, (long long)results[best].policy.ctas_per_sm,
                  results[best].us, fallback_result.us);
    summary.push_back(line);

    free_device_inputs(dev);
  }
  CHECK(cudaStreamDestroy(stream));
  return print_summary(summary, failed);
}
