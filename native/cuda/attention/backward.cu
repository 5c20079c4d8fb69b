// Launches the backward kernels (dQ; dK and dV) for head dims 32, 64 and 128 on the kernels heuristics.h chooses:
// the Hopper kernel (backward_hopper.h), or the two mma.sync kernels below.
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "backward_dkdv_kernel.cuh"
#include "backward_dq_kernel.cuh"
#include "backward_hopper.h"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

// Tile sizes keep each thread's accumulators and score tiles in registers: at head dim 128, dQ (64
// floats) with 32-key tiles; dK + dV (128 floats) with 32-query tiles.
template <int D> constexpr int dq_block_n() { return D == 128 ? 32 : 64; }
template <int D> constexpr int dkdv_block_m() { return D == 128 ? 32 : 64; }

template <int D, bool kTransform>
void launch_dq(const Params& p) {
  constexpr int kWarps = 4, kBlockN = dq_block_n<D>();
  using Cfg = BackwardDqConfig<D, kWarps, kBlockN>;
  auto kernel = attention_backward_dq_kernel<D, kWarps, kBlockN, kTransform>;
  // The transform reads its rotary rows from global memory here: staging them in shared memory (as the
  // forward does) made these kernels slower (orca backward 34 → 45 ms; NOTES.md).
  constexpr int smem = Cfg::kSmemBytes;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  check(attr, "attention backward dQ: raising the shared-memory limit");
  const dim3 grid(unsigned((p.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, Cfg::kThreads, smem, stream()>>>(p);
  check_launch("attention backward dQ kernel");
}

template <int D, bool kTransform>
void launch_dkdv(const Params& p) {
  constexpr int kWarps = 4, kBlockM = dkdv_block_m<D>();
  using Cfg = BackwardDkDvConfig<D, kWarps, kBlockM>;
  auto kernel = attention_backward_dkdv_kernel<D, kWarps, kBlockM, kTransform>;
  // The transform reads its rotary rows from global memory here: staging them in shared memory (as the
  // forward does) made these kernels slower (orca backward 34 → 45 ms; NOTES.md).
  constexpr int smem = Cfg::kSmemBytes;
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  check(attr, "attention backward dK/dV: raising the shared-memory limit");
  const dim3 grid(unsigned((p.k_len + Cfg::kBlockN - 1) / Cfg::kBlockN), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, Cfg::kThreads, smem, stream()>>>(p);
  check_launch("attention backward dK/dV kernel");
}

[[noreturn]] void bad_dim(int head_dim) {
  throw std::invalid_argument("attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
}

}  // namespace

void launch_backward_dq(const Params& p, int head_dim, bool transform) {
  switch (head_dim) {
    case 32: transform ? launch_dq<32, true>(p) : launch_dq<32, false>(p); break;
    case 64: transform ? launch_dq<64, true>(p) : launch_dq<64, false>(p); break;
    case 128: transform ? launch_dq<128, true>(p) : launch_dq<128, false>(p); break;
    default: bad_dim(head_dim);
  }
}

void launch_backward_dkdv(const Params& p, int head_dim, bool transform) {
  switch (head_dim) {
    case 32: transform ? launch_dkdv<32, true>(p) : launch_dkdv<32, false>(p); break;
    case 64: transform ? launch_dkdv<64, true>(p) : launch_dkdv<64, false>(p); break;
    case 128: transform ? launch_dkdv<128, true>(p) : launch_dkdv<128, false>(p); break;
    default: bad_dim(head_dim);
  }
}

Kernel backward_kernel(const Params& p, int head_dim, bool transform, KernelRequest request) {
  const KernelChoice choice = choose_backward(kernel_problem(p, head_dim, transform), request);
  if (!choice.error.empty()) throw std::invalid_argument("attention: " + choice.error);
  return choice.kernel;
}

void launch_backward(const Params& p, int head_dim, bool transform, KernelRequest request, const DqRotary* rotary) {
  const Kernel kernel = backward_kernel(p, head_dim, transform, request);
  // The split key scale's K'_h is built only by the Hopper kernel; the transform plan asks for it only there.
  if (p.key_split && kernel != Kernel::Hopper)
    throw std::logic_error("attention: the split key scale reached the mma.sync backward");
  if (kernel == Kernel::Hopper) return launch_backward_hopper(p, head_dim, rotary);
  if (rotary) throw std::logic_error("attention: the dQ rotary conversion reached the mma.sync backward");
  if (p.q_len > 0) launch_backward_dq(p, head_dim, transform);
  launch_backward_dkdv(p, head_dim, transform);
}

}  // namespace andromeda::cuda::attention
