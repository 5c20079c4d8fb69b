// Which attention kernel runs: a pure function of the problem's shapes, its features and the device (as
// FlashAttention 3's hopper/heuristics.h). Nothing here reads the environment or any global state; the launchers
// (forward.cu, backward.cu, attention.cu) describe the problem, ask, and launch what the answer names. Callers that
// need one kernel in particular (tests comparing kernels, benchmarks) pass a KernelRequest; a request the problem
// cannot honour is an error naming the reason, never a silent fallback.
//
// The rules are today's measured winners (bench/results/gpu-attention.md):
//   forward   Hopper wgmma/TMA kernel (overlapped softmax) wherever it applies, else the mma.sync kernel;
//   backward  Hopper wgmma kernel (cp.async loads) wherever it applies and its float32 dQ accumulator stays
//             ≤ 4 GiB, else the two mma.sync kernels;
//   decode    the split-KV decode kernel for ≤ 16 queries whose (group heads × queries) rows fit one CTA.
//   order     the Hopper kernels' CTAs longest tiles first over sections of heads (hopper_lpt_section).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>

namespace andromeda::cuda::attention {

/** Everything the kernel choice depends on. */
struct KernelProblem {
  int head_dim = 0;
  int batch = 0, heads = 0;
  int k_heads = 0;   // heads of the key tensor the kernels read (kv_heads, or heads for a k' per query head)
  int kv_heads = 0;  // heads of v
  int64_t q_len = 0, k_len = 0;
  bool transform_in_kernel = false;  // rotary, xPos or the key scale applied per tile by the kernels
  bool key_split = false;            // the split key scale: K'_h = c_h ⊙ A + d_h ⊙ B built by the kernel
  bool custom_positions = false;
  bool positive_scale = true;
  bool hopper_device = false;  // compute capability 9.x and this build carries sm_90a images of the kernels
};

/** The kernel families of the tiled forward and of the backward. */
enum class Kernel { MmaSync = 0, Hopper = 1 };

/** What a caller asks for: the heuristic's choice, or one kernel (an error where it cannot run). */
enum class KernelRequest { Auto = 0, MmaSync = 1, Hopper = 2 };

/**
 * The Hopper kernels take their (tile, head, batch item) in sections of this many consecutive (batch item, head)
 * pairs; within a section the longest causal tiles first, its heads fastest (FlashAttention 3's LPT scheduler). Head
 * by head (a section of 1), each head's short tiles run while the next head's long ones wait: at andromeda-3b's
 * 2,048 tokens (16 tiles × 24 heads on 132 multiprocessors) a list-scheduling model puts that at 1.27× the
 * all-heads order. A section holds as many heads as keep what their CTAs read in common within ~32 MB of L2
 * (`bytes_per_head`: the forward's K and V, the backward's Q, dO and float32 dQ rows), and the sections are
 * evened out (16 + 8 heads would leave the last section's tail alone; 12 + 12 does not). Grids of 2^31 CTAs or
 * more keep the grid's order (a section of 1).
 */
constexpr int64_t kLptL2Bytes = int64_t(32) << 20;
inline int hopper_lpt_section(double bytes_per_head, int64_t pairs, int64_t tiles) {
  if (tiles * pairs >= (int64_t(1) << 31)) return 1;  // lpt_tile counts CTAs in 32 bits
  const int64_t most = std::max<int64_t>(1, int64_t(double(kLptL2Bytes) / std::max(1.0, bytes_per_head)));
  const int64_t sections = (pairs + most - 1) / most;
  return int(std::max<int64_t>(1, (pairs + sections - 1) / sections));
}

/** The forward's bytes a head reads in common with its section: K and V (a KV head's share when its item's fit). */
inline double hopper_forward_lpt_bytes(int64_t k_len, int head_dim, int heads, int kv_heads) {
  const double kv_head = double(k_len) * head_dim * 2 * 2;  // K and V, bf16
  return kv_heads * kv_head <= double(kLptL2Bytes) ? kv_heads * kv_head / heads : kv_head;
}

/** The backward's: a head's Q and dO (bf16) and its float32 dQ accumulator rows. */
inline double hopper_backward_lpt_bytes(int64_t q_len, int head_dim) { return double(q_len) * head_dim * (2 + 2 + 4); }

/** Queries per tile and keys per CTA of the Hopper backward: smaller problems keep the mma.sync kernels. */
constexpr int kHopperBackwardMinQueries = 64, kHopperBackwardMinKeys = 128;
/** The Hopper backward's float32 dQ accumulator above which the heuristic keeps the mma.sync kernels (no scratch). */
constexpr double kHopperBackwardAccumulatorLimit = 4.0 * (1ull << 30);
/** The decode kernel scores at most this many (head, query) rows per KV head. */
constexpr int kDecodeRowsLimit = 64;
/** Longest query block the heuristic sends to the decode kernel. */
constexpr int64_t kDecodeMaxQueries = 16;

/** Rows of the Hopper backward's dQ accumulator per (batch item, head): whole 128-query blocks. */
constexpr int64_t hopper_dq_accumulator_rows(int64_t q_len) { return (q_len + 127) / 128 * 128; }

inline std::string hopper_device_reason(const KernelProblem& k) {
  return k.hopper_device ? "" : "the GPU is not compute capability 9.x, or the engine was built without sm_90a (ANDROMEDA_CUDA_ARCHS)";
}

/** Why the Hopper forward cannot run this problem, or "" when it can. */
inline std::string hopper_forward_unsupported(const KernelProblem& k) {
  if (k.head_dim != 64 && k.head_dim != 128) return "head dim " + std::to_string(k.head_dim) + " (the Hopper kernel takes 64 and 128)";
  if (k.transform_in_kernel) return "rotary, xPos or a key scale is applied in the kernel tiles (only the mma.sync kernel does that)";
  if (k.custom_positions) return "custom positions are given";
  if (k.k_len == 0) return "there are no keys";
  if (!k.positive_scale) return "the scale is not positive";
  if (k.k_heads <= 0 || k.heads % k.k_heads != 0) return "k_heads must divide heads";
  return hopper_device_reason(k);
}

/** Why the Hopper backward cannot run this problem, or "" when it can. */
inline std::string hopper_backward_unsupported(const KernelProblem& k) {
  if (k.head_dim != 64 && k.head_dim != 128) return "head dim " + std::to_string(k.head_dim) + " (the Hopper kernel takes 64 and 128)";
  if (k.transform_in_kernel) return "rotary, xPos or a key scale is applied in the kernel tiles (only the mma.sync kernels do that)";
  if (k.custom_positions) return "custom positions are given";
  // Smaller problems gain nothing from it; they keep the mma.sync kernels.
  if (k.q_len < kHopperBackwardMinQueries || k.k_len < kHopperBackwardMinKeys) {
    return "fewer than " + std::to_string(kHopperBackwardMinQueries) + " queries or " +
           std::to_string(kHopperBackwardMinKeys) + " keys (" + std::to_string(k.q_len) + " × " + std::to_string(k.k_len) + ")";
  }
  if (k.k_heads <= 0 || k.kv_heads <= 0 || k.heads % k.k_heads != 0 || k.heads % k.kv_heads != 0) return "k_heads and kv_heads must divide heads";
  if (int64_t(k.batch) * k.heads * k.q_len + 256 >= (int64_t(1) << 31)) return "batch · heads · queries reaches 2^31";
  return hopper_device_reason(k);
}

/** Bytes of the Hopper backward's float32 dQ accumulator. */
inline double hopper_backward_accumulator_bytes(const KernelProblem& k) {
  return double(k.batch) * k.heads * double(hopper_dq_accumulator_rows(k.q_len)) * k.head_dim * 4;
}

/** Why the heuristic does not pick the Hopper backward ("" when it does): unsupported, or too much scratch. */
inline std::string hopper_backward_not_chosen(const KernelProblem& k) {
  std::string reason = hopper_backward_unsupported(k);
  if (reason.empty() && hopper_backward_accumulator_bytes(k) > kHopperBackwardAccumulatorLimit)
    reason = "its dQ accumulator would exceed 4 GiB";
  return reason;
}

/** The result of a request: the kernel, or why the requested one cannot run (kernel MmaSync then). */
struct KernelChoice {
  Kernel kernel = Kernel::MmaSync;
  std::string error;  // non-empty: the request cannot be honoured
};

/** The tiled forward's kernel for `request` on this problem. */
inline KernelChoice choose_forward(const KernelProblem& k, KernelRequest request) {
  if (request == KernelRequest::MmaSync) return {Kernel::MmaSync, ""};
  const std::string reason = hopper_forward_unsupported(k);
  if (reason.empty()) return {Kernel::Hopper, ""};
  if (request == KernelRequest::Auto) return {Kernel::MmaSync, ""};
  return {Kernel::MmaSync, "the Hopper forward cannot run: " + reason};
}

/** The backward's kernel for `request` on this problem. */
inline KernelChoice choose_backward(const KernelProblem& k, KernelRequest request) {
  if (request == KernelRequest::MmaSync) return {Kernel::MmaSync, ""};
  if (request == KernelRequest::Hopper) {
    const std::string reason = hopper_backward_unsupported(k);
    return reason.empty() ? KernelChoice{Kernel::Hopper, ""} : KernelChoice{Kernel::MmaSync, "the Hopper backward cannot run: " + reason};
  }
  return {hopper_backward_not_chosen(k).empty() ? Kernel::Hopper : Kernel::MmaSync, ""};
}

/**
 * Whether the kernels chosen for `request` can take the split key scale (they build K'_h from A and B): the Hopper
 * kernels only. `k` describes the problem with the pre-pass's plain launch (no in-kernel transform).
 */
inline bool forward_split_ready(KernelProblem k, KernelRequest request) {
  k.transform_in_kernel = false;
  k.key_split = true;
  const KernelChoice c = choose_forward(k, request);
  return c.error.empty() && c.kernel == Kernel::Hopper;
}
inline bool backward_split_ready(KernelProblem k, KernelRequest request) {
  k.transform_in_kernel = false;
  k.key_split = true;
  const KernelChoice c = choose_backward(k, request);
  return c.error.empty() && c.kernel == Kernel::Hopper;
}

/** Whether the decode kernel can score this problem: all (group heads × queries) rows of a KV head in one CTA. */
inline bool decode_fits(int heads, int kv_heads, int64_t q_len) {
  return int64_t(heads / kv_heads) * q_len <= kDecodeRowsLimit;
}

/** Whether the heuristic sends this forward to the decode kernel rather than the tiled one. */
inline bool prefer_decode(int heads, int kv_heads, int64_t q_len) {
  return q_len <= kDecodeMaxQueries && decode_fits(heads, kv_heads, q_len);
}

}  // namespace andromeda::cuda::attention
