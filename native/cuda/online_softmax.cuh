// Running (max, Σ exp(x − max)) of a row, merged across threads: the one-read log-sum-exp behind
// softmax and cross-entropy.
#pragma once
#include "common.cuh"

namespace andromeda::cuda {

template <typename C>
struct MaxSum {
  C max = -C(INFINITY);
  C sum = C(0);

  /** Adds one value with one exp: the running sum is rescaled only when the max moves. */
  __device__ __forceinline__ void add(C v) {
    if (v > max) {
      sum = sum * exp(max - v) + C(1);
      max = v;
    } else if (v != -C(INFINITY)) {  // NaN still poisons the sum, as on the CPU
      sum += exp(v - max);
    }
  }
};

/** Merges two partial pairs; −∞ maxima (empty or fully masked) add nothing. */
template <typename C>
__device__ __forceinline__ MaxSum<C> merge(MaxSum<C> a, MaxSum<C> b) {
  const C m = a.max > b.max ? a.max : b.max;
  MaxSum<C> r;
  r.max = m;
  r.sum = m == -C(INFINITY) ? C(0) : a.sum * exp(a.max - m) + b.sum * exp(b.max - m);
  return r;
}

/** Block-wide merge; every thread receives the row's pair. */
template <typename C>
__device__ MaxSum<C> block_max_sum(MaxSum<C> v) {
  __shared__ C maxes[32], sums[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum<C> other;
    other.max = __shfl_xor_sync(0xffffffffu, v.max, o);
    other.sum = __shfl_xor_sync(0xffffffffu, v.sum, o);
    v = merge(v, other);
  }
  __syncthreads();
  if (lane == 0) { maxes[warp] = v.max; sums[warp] = v.sum; }
  __syncthreads();
  MaxSum<C> r;
  for (int w = 0; w < int(blockDim.x >> 5); w++) {
    MaxSum<C> p;
    p.max = maxes[w];
    p.sum = sums[w];
    r = merge(r, p);
  }
  return r;
}

}  // namespace andromeda::cuda
