// Launches the tiled forward kernel for head dims 32, 64 and 128: the Hopper (wgmma) kernel where it applies
// and ANDROMEDA_ATTENTION_FORWARD allows it (forward_hopper.h), else the mma.sync kernel below.
//
// Layout: 4 warps × 32 query rows (128-row tiles, two per multiprocessor) by default. The former layout,
// 8 warps × 16 rows, stays selectable for comparison with ANDROMEDA_ATTENTION_FORWARD_LAYOUT=8x16.
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "../runtime.h"
#include "forward_hopper.h"
#include "forward_kernel.cuh"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

// 32-key tiles at head dim 128 with two row tiles per warp: O (128 floats) and S must fit 255 registers.
template <int D, int kWarps, int kMTiles, bool kTransform>
void launch(const Params& p) {
  constexpr int kBlockN = (D == 128 && kMTiles == 2) ? 32 : 64;
  using Cfg = ForwardConfig<D, kWarps, kMTiles, kBlockN>;
  auto kernel = attention_forward_kernel<D, kWarps, kMTiles, kBlockN, kTransform>;
  // Shared memory grows with the rotary width only as far as it is used (occupancy at small widths).
  constexpr int kMaxSmem = Cfg::kSmemBytes + (kTransform ? Cfg::transform_bytes(D) : 0);
  const int smem = Cfg::kSmemBytes + (kTransform ? Cfg::transform_bytes(p.rotary_dim) : 0);
  static const cudaError_t attr = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kMaxSmem);
  check(attr, "attention forward: raising the shared-memory limit");
  const dim3 grid(unsigned((p.q_len + Cfg::kBlockM - 1) / Cfg::kBlockM), unsigned(p.heads), unsigned(p.batch));
  kernel<<<grid, Cfg::kThreads, smem, stream()>>>(p);
  check_launch("attention forward kernel");
}

bool sixteen_row_layout() {
  static const bool chosen = [] {
    const char* v = std::getenv("ANDROMEDA_ATTENTION_FORWARD_LAYOUT");
    return v && std::strcmp(v, "8x16") == 0;
  }();
  return chosen;
}

template <int D>
void launch_dim(const Params& p, bool transform) {
  if (sixteen_row_layout()) {
    transform ? launch<D, 8, 1, true>(p) : launch<D, 8, 1, false>(p);
  } else {
    transform ? launch<D, 4, 2, true>(p) : launch<D, 4, 2, false>(p);
  }
}

}  // namespace

void launch_forward_tiled(const Params& p, int head_dim, bool transform) {
  if (launch_forward_hopper_if_chosen(p, head_dim, transform)) return;
  switch (head_dim) {
    case 32: launch_dim<32>(p, transform); break;
    case 64: launch_dim<64>(p, transform); break;
    case 128: launch_dim<128>(p, transform); break;
    default: throw std::invalid_argument("attention: head dim " + std::to_string(head_dim) + " (supported: 32, 64, 128)");
  }
}

}  // namespace andromeda::cuda::attention
