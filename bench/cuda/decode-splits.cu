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
// The problem, its inputs and upload, the float64 attention and the graph timing are paged_problem.h's, the same
// as bench/cuda/paged-splits.cu's.
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
#include "paged_problem.h"

using namespace andromeda::cuda::paged;

namespace {

// andromeda-3b's problem, its inputs, the float64 reference and the graph timing: paged_problem.h.

// A shape's output vs the rule's: max abs difference over the rule's largest |output| (bf16 rounding of outputs
// merged in another order); the rule's vs float64: paged_problem.h's kReferenceLimit.
constexpr double kShapeLimit = 2e-2;
// Split counts tried (those up to the case's slices): powers of two and the steps between, and 132 / 264 (one and
// two CTAs per multiprocessor of an H100 SXM at one sequence).
constexpr int64_t kSweepSplits[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 132, 192, 264};

static_assert(kLaunchDecodeSliceKeys == kSliceKeys && kLaunchDecodeWarps == kDecodeWarps,
              "heuristics.h and this sweep size the grid by the decode kernel's slices and warps");
static_assert(kHeads / kKvHeads <= kDecodeRows, "the decode kernel holds a KV head's group in one CTA");

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
  paged_attention_combine_kernel<T, kHeadDim, 16><<<combine_grid, kCombineThreads, 0, stream>>>(p);
}

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

  for (const Case& c : cases) {
    char name[64];
    std::snprintf(name, sizeof name, "%lld × %lld keys", (long long)c.seqs, (long long)c.keys);
    const CaseSizes sizes = case_sizes(c, prop);
    const Inputs in = make_inputs(c, sizes);
    const DeviceInputs dev = upload(c, sizes, in);
    const andromeda::PagedAttentionArgs a = call_args(c, sizes, in, dev);
    const AttentionParams base = attention_params(a, dev.q, nullptr, nullptr, dev.out);  // pools: per copy, below
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

    // One shape: its output (from pool copy 0) into `result`, and its times per call, whole (launch_call, the
    // engine's call) and the decode kernel alone (launch_decode).
    auto measure = [&](Result& r, std::vector<uint16_t>& result) {
      const PagedLaunch& l = r.shape;
      const SplitScratch scratch = alloc_split_scratch(a, l);
      const std::vector<AttentionParams> params = params_per_copy(base, sizes, dev, l, scratch);
      checked_call(params[0], launch_call, dev, in.q.size(), stream, result);
      r.us_call = time_graph(params, launch_call, sizes.reps, stream);
      // With one split the call is the kernel alone: its graph would be the same graph, timed again.
      r.us_kernel = l.splits > 1 ? time_graph(params, launch_decode, sizes.reps, stream) : r.us_call;
      free_split_scratch(scratch);
    };

    std::printf("\n## %s: K+V %.1f MB per call, %d pool copies (%.0f MB), %lld slices of %lld keys\n", name,
                sizes.kv_bytes / 1e6, sizes.copies, 2.0 * sizes.pool_bytes * sizes.copies / 1e6, (long long)slices,
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
    if (c.reference) failed |= !matches_reference(c, in, expected, name, "rule");
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

    free_device_inputs(dev);
  }
  CHECK(cudaStreamDestroy(stream));
  return print_summary(summary, failed);
}
