// Small kernels around the attention kernels: rotary tables, the backward's δ = rowsum(dO ⊙ O), and the
// float32 → bf16 conversion of summed gradients.
#include "../common.cuh"
#include "launch.h"

namespace andromeda::cuda::attention {
namespace {

__global__ void rotary_table_kernel(float2* table, const int32_t* positions, int64_t default_first, int64_t rows,
                                    int len, int pairs, const InvFreq inv_freq) {
  ANDROMEDA_GRID_STRIDE(idx, rows * pairs) {
    const int64_t row = idx / pairs;
    const int f = int(idx % pairs);
    const double pos = positions ? double(positions[row]) : double(default_first + row % len);
    // Angles reach 10^5 rad, which float32 would lose: the product and the reduction to [−π, π] are done
    // in double, the sine and cosine of the small remainder in float (double sincos of large angles takes
    // a slow path that dominated decode steps).
    const double theta = pos * double(inv_freq.value[f]);
    const double turns = rint(theta * 0.15915494309189535);  // 1 / 2π
    const float reduced = float(fma(-turns, 6.283185307179586, theta));
    float s, c;
    sincosf(reduced, &s, &c);
    table[idx] = make_float2(c, s);
  }
}

/** One warp per row. */
__global__ void delta_kernel(const bf16* grad_out, const bf16* out, float* delta, int64_t rows, int head_dim) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  float sum = 0.f;
  for (int f = 2 * lane; f < head_dim; f += 64) {
    const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(grad_out + row * head_dim + f));
    const float2 o = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(out + row * head_dim + f));
    sum += a.x * o.x + a.y * o.y;
  }
  sum = warp_sum(sum);
  if (lane == 0) delta[row] = sum;
}

__global__ void to_bf16_kernel(const float* src, bf16* dst, int64_t count) {
  ANDROMEDA_GRID_STRIDE(i, count) dst[i] = __float2bfloat16_rn(src[i]);
}

__global__ void to_f32_kernel(const bf16* src, float* dst, int64_t count) {
  ANDROMEDA_GRID_STRIDE(i, count) dst[i] = __bfloat162float(src[i]);
}

}  // namespace

void launch_rotary_table(float2* table, const int32_t* positions, int64_t default_first, int items, int len, int pairs,
                         const InvFreq& inv_freq) {
  const int64_t rows = int64_t(items) * len;
  if (rows == 0 || pairs == 0) return;
  rotary_table_kernel<<<grid_for(rows * pairs), kThreads, 0, stream()>>>(table, positions, default_first, rows, len,
                                                                          pairs, inv_freq);
  check_launch("attention rotary table");
}

void launch_delta(const Params& p, const bf16* out, float* delta, int head_dim) {
  const int64_t rows = int64_t(p.batch) * p.heads * p.q_len;
  if (rows == 0) return;
  constexpr int kRowsPerBlock = 8;
  delta_kernel<<<unsigned((rows + kRowsPerBlock - 1) / kRowsPerBlock), kRowsPerBlock * 32, 0, stream()>>>(
      p.grad_out, out, delta, rows, head_dim);
  check_launch("attention backward δ");
}

void launch_to_bf16(const float* src, bf16* dst, int64_t count) {
  if (count == 0) return;
  to_bf16_kernel<<<grid_for(count), kThreads, 0, stream()>>>(src, dst, count);
  check_launch("attention gradient to bf16");
}

void launch_to_f32(const bf16* src, float* dst, int64_t count) {
  if (count == 0) return;
  to_f32_kernel<<<grid_for(count), kThreads, 0, stream()>>>(src, dst, count);
  check_launch("attention result to float32");
}

}  // namespace andromeda::cuda::attention
