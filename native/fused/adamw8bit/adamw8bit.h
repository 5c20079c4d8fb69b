// 8-bit AdamW over many tensors with shared hyperparameters (block-wise dynamic quantization, as bitsandbytes'
// 8-bit optimizers). Master weights stay float32; each moment element is stored as a one-byte code into a
// 256-value quantization map (the signed dynamic map for m, the unsigned one for v: src/optim/adamw8bit-map.ts
// builds both and passes them to every call) scaled by a float32 absmax shared by each block of
// kAdamW8bitBlock consecutive elements. Per block, one step:
//   dequantize  m = signed_map[m_code] · m_absmax,  v = unsigned_map[v_code] · v_absmax
//   update      exactly `adamw`'s float32 arithmetic: g = grad · grad_scale, m ← β1·m + (1−β1)·g,
//               v ← β2·v + (1−β2)·g·g, p ← p·(1 − lr·wd) − (lr/bc1)·m / (√v · (1/√bc2) + eps)
//   requantize  absmax = max |moment| over the block; code = the nearest map value to moment / absmax (ties to
//               the lower code; an all-zero block keeps absmax 0 and the code of 0)
// The weight update uses the unquantized new moments; only their storage is 8-bit. When `shadow` is set the
// updated weights are also stored there rounded to `shadow_dtype` (bfloat16 or float16), in the same pass.
// Both engines take the same float32 operations in the same order, so they give the same bits.
// Forms: cpu.cc, cuda.cu.
#pragma once
#include <cstddef>
#include <cstdint>

namespace andromeda {

/** Elements that share one absmax. */
constexpr int64_t kAdamW8bitBlock = 256;
/** Values in each quantization map (one per code). */
constexpr int kAdamW8bitMapSize = 256;

struct AdamW8bitTensorArgs {
  float* param;
  int grad_dtype;
  const char* grad;
  uint8_t* m;        // count codes into the signed map
  uint8_t* v;        // count codes into the unsigned map
  float* m_absmax;   // ceil(count / kAdamW8bitBlock)
  float* v_absmax;
  int64_t count;
  int shadow_dtype;
  char* shadow;  // null: no low-precision copy
};

/** A map stored as it is: value i at index i (the CPU form, and the maps as they are passed in). */
struct AdamW8bitDenseMap {
#if defined(__CUDACC__)
  __host__ __device__
#endif
  static constexpr int at(int i) { return i; }
};

/**
 * The code whose map value is nearest to x (map sorted ascending; ties to the lower code). Only comparisons and
 * subtractions of float32 values, so every compiler and engine picks the same code. `Layout::at(i)` is where value
 * i sits in `map` (the CUDA form keeps its shared-memory copy padded against bank conflicts); the search is the
 * same for every layout, so the codes are too. (A search that selects instead of branching measured 1.7× slower
 * on the CPU: bench/results/plan.md, "8-bit AdamW on the CPU".)
 */
template <typename Layout = AdamW8bitDenseMap>
#if defined(__CUDACC__)
__host__ __device__
#endif
inline uint8_t adamw8bit_nearest_code(const float* map, float x) {
  int lo = 0, hi = kAdamW8bitMapSize - 1;
  if (!(x > map[Layout::at(lo)])) return uint8_t(lo);
  if (!(x < map[Layout::at(hi)])) return uint8_t(hi);
  // map[lo] < x < map[hi]: narrow to neighbours with map[lo] <= x < map[hi].
  while (hi - lo > 1) {
    const int mid = (lo + hi) >> 1;
    if (map[Layout::at(mid)] <= x) lo = mid;
    else hi = mid;
  }
  return uint8_t(map[Layout::at(hi)] - x < x - map[Layout::at(lo)] ? hi : lo);
}

}  // namespace andromeda
