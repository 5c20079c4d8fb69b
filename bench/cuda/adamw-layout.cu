// Which layout of a thread's elements lets the many-tensor AdamW (native/fused/adamw/cuda.cu) stream its 28 bytes a
// parameter fastest? Float32 master and moments, bf16 gradient and weight copy, over one flat tensor of N parameters
// (andromeda-3b has 2.48 B; 1 B here, 35 GB of state, far past the L2):
//   thread8   the engine's layout: a thread's 8 consecutive elements (two 16-byte accesses a float32 array), so one
//             warp instruction touches every other 16 bytes of 1 KiB
//   warp4xK   each warp instruction reads 512 contiguous bytes: a thread's K float4 packs lie blockDim·4 elements
//             apart, the bf16 arrays in 8-byte accesses (K = 2: the same 8 elements a thread; K = 4: 16)
//   chunked   thread8's element layout walked as the engine walks its chunk table: a block takes a chunk of 65,536
//             elements at a time (blocks stride over chunks), so each resident block streams its own region
//   window    the grid walks the chunks together: global thread g of a sweep takes the 8 elements at g·8 of a window
//             of consecutive chunks, finding its chunk's entry through a table (the lookups the engine would make)
// each with the streaming hints (ld/st.global.cs) and without. Every variant computes adamw_element per element, so
// all give the thread8 kernel's bits (checked). Prints RESULT lines with milliseconds and GB/s (best of 5 after 2).
//   nvcc -O3 -std=c++17 -arch=sm_90a -I native bench/cuda/adamw-layout.cu -o /tmp/bins/adamw-layout
#include <cuda_bf16.h>

#include <algorithm>
#include <vector>

#include "bench_common.h"
#include "fused/adamw/element.cuh"

using andromeda::cuda::adamw_element;
using K = andromeda::cuda::AdamWConstants;  // the engine's element step and its constants (element.cuh)

template <bool CS, typename V>
__device__ __forceinline__ V ld(const V* p) {
  if constexpr (CS) return __ldcs(p);
  else return *p;
}
template <bool CS, typename V>
__device__ __forceinline__ void st(V* p, V x) {
  if constexpr (CS) __stcs(p, x);
  else *p = x;
}

__device__ __forceinline__ float bf(unsigned short u) { return __uint_as_float(uint32_t(u) << 16); }
__device__ __forceinline__ uint32_t bf_bits(float x) {
  __nv_bfloat16 h = __float2bfloat16_rn(x);
  return *reinterpret_cast<unsigned short*>(&h);
}

/** 8 elements at i, as the engine's kernel takes them: two 16-byte accesses a float32 array, one a bf16 one. */
template <bool CS>
__device__ __forceinline__ void eight(float* p, const unsigned short* g, float* m, float* v, unsigned short* w, int64_t i,
                                      const K& k) {
  float4 p0 = ld<CS>(reinterpret_cast<const float4*>(p + i)), p1 = ld<CS>(reinterpret_cast<const float4*>(p + i + 4));
  float4 m0 = ld<CS>(reinterpret_cast<const float4*>(m + i)), m1 = ld<CS>(reinterpret_cast<const float4*>(m + i + 4));
  float4 v0 = ld<CS>(reinterpret_cast<const float4*>(v + i)), v1 = ld<CS>(reinterpret_cast<const float4*>(v + i + 4));
  const uint4 graw = ld<CS>(reinterpret_cast<const uint4*>(g + i));
  float pp[8] = {p0.x, p0.y, p0.z, p0.w, p1.x, p1.y, p1.z, p1.w};
  float mm[8] = {m0.x, m0.y, m0.z, m0.w, m1.x, m1.y, m1.z, m1.w};
  float vv[8] = {v0.x, v0.y, v0.z, v0.w, v1.x, v1.y, v1.z, v1.w};
  const uint32_t gw[4] = {graw.x, graw.y, graw.z, graw.w};
  uint32_t out[4];
#pragma unroll
  for (int e = 0; e < 8; e++) {
    const float ge = bf(static_cast<unsigned short>(e % 2 ? gw[e / 2] >> 16 : gw[e / 2] & 0xffff));
    pp[e] = adamw_element(pp[e], ge, mm[e], vv[e], k);
  }
#pragma unroll
  for (int e = 0; e < 8; e += 2) out[e / 2] = bf_bits(pp[e]) | (bf_bits(pp[e + 1]) << 16);
  st<CS>(reinterpret_cast<float4*>(m + i), make_float4(mm[0], mm[1], mm[2], mm[3]));
  st<CS>(reinterpret_cast<float4*>(m + i + 4), make_float4(mm[4], mm[5], mm[6], mm[7]));
  st<CS>(reinterpret_cast<float4*>(v + i), make_float4(vv[0], vv[1], vv[2], vv[3]));
  st<CS>(reinterpret_cast<float4*>(v + i + 4), make_float4(vv[4], vv[5], vv[6], vv[7]));
  st<CS>(reinterpret_cast<float4*>(p + i), make_float4(pp[0], pp[1], pp[2], pp[3]));
  st<CS>(reinterpret_cast<float4*>(p + i + 4), make_float4(pp[4], pp[5], pp[6], pp[7]));
  st<CS>(reinterpret_cast<uint4*>(w + i), make_uint4(out[0], out[1], out[2], out[3]));
}

/** The engine's layout: thread t of the grid-wide sweep takes elements [8t, 8t + 8). */
template <bool CS>
__global__ void __launch_bounds__(256) thread8(float* p, const unsigned short* g, float* m, float* v, unsigned short* w,
                                               int64_t n, K k) {
  const int64_t packs = n / 8;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += int64_t(gridDim.x) * blockDim.x)
    eight<CS>(p, g, m, v, w, q * 8, k);
}

/** Warp-contiguous: a block's tile of 4·KP·blockDim elements; thread t's pack j starts at 4t + 4·blockDim·j. */
template <bool CS, int KP>
__global__ void __launch_bounds__(256) warp4(float* p, const unsigned short* g, float* m, float* v, unsigned short* w,
                                             int64_t n, K k) {
  const int64_t tile = int64_t(4) * KP * blockDim.x;
  const int64_t tiles = n / tile;
  for (int64_t b = blockIdx.x; b < tiles; b += gridDim.x) {
    float4 pp[KP], mm[KP], vv[KP];
    uint2 gg[KP];
#pragma unroll
    for (int j = 0; j < KP; j++) {
      const int64_t i = b * tile + 4 * (threadIdx.x + int64_t(j) * blockDim.x);
      pp[j] = ld<CS>(reinterpret_cast<const float4*>(p + i));
      mm[j] = ld<CS>(reinterpret_cast<const float4*>(m + i));
      vv[j] = ld<CS>(reinterpret_cast<const float4*>(v + i));
      gg[j] = ld<CS>(reinterpret_cast<const uint2*>(g + i));
    }
#pragma unroll
    for (int j = 0; j < KP; j++) {
      const int64_t i = b * tile + 4 * (threadIdx.x + int64_t(j) * blockDim.x);
      float* pe = &pp[j].x;
      float* me = &mm[j].x;
      float* ve = &vv[j].x;
      const uint32_t gw[2] = {gg[j].x, gg[j].y};
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float ge = bf(static_cast<unsigned short>(e % 2 ? gw[e / 2] >> 16 : gw[e / 2] & 0xffff));
        pe[e] = adamw_element(pe[e], ge, me[e], ve[e], k);
      }
      st<CS>(reinterpret_cast<float4*>(m + i), mm[j]);
      st<CS>(reinterpret_cast<float4*>(v + i), vv[j]);
      st<CS>(reinterpret_cast<float4*>(p + i), pp[j]);
      st<CS>(reinterpret_cast<uint2*>(w + i),
             make_uint2(bf_bits(pe[0]) | (bf_bits(pe[1]) << 16), bf_bits(pe[2]) | (bf_bits(pe[3]) << 16)));
    }
  }
}

constexpr int64_t kChunk = 1 << 16;
__device__ int64_t g_chunk_start[1 << 16];  // chunk c's first element (the table's lookups; c · kChunk here)

template <bool CS>
__global__ void __launch_bounds__(256) chunked(float* p, const unsigned short* g, float* m, float* v, unsigned short* w,
                                               int64_t n, K k) {
  for (int64_t c = blockIdx.x; c < n / kChunk; c += gridDim.x) {
    const int64_t begin = g_chunk_start[c];
    for (int q = threadIdx.x; q < kChunk / 8; q += blockDim.x) eight<CS>(p, g, m, v, w, begin + int64_t(q) * 8, k);
  }
}

template <bool CS>
__global__ void __launch_bounds__(256) window(float* p, const unsigned short* g, float* m, float* v, unsigned short* w,
                                              int64_t n, K k) {
  const int64_t packs = n / 8;
  for (int64_t q = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; q < packs; q += int64_t(gridDim.x) * blockDim.x) {
    const int64_t c = q / (kChunk / 8);
    eight<CS>(p, g, m, v, w, g_chunk_start[c] + (q % (kChunk / 8)) * 8, k);
  }
}

__global__ void fill_chunks(int64_t chunks) {
  for (int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; c < chunks; c += int64_t(gridDim.x) * blockDim.x)
    g_chunk_start[c] = c * kChunk;
}

struct State {
  float *p, *m, *v;
  unsigned short *g, *w;
};

__global__ void init(State s, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const uint32_t h = uint32_t(i) * 2654435761u;
    s.p[i] = (float(h % 2001) - 1000.0f) * 1e-5f;
    s.m[i] = (float((h >> 3) % 2001) - 1000.0f) * 1e-7f;
    s.v[i] = float((h >> 5) % 1000) * 1e-9f;
    s.g[i] = static_cast<unsigned short>(bf_bits((float((h >> 7) % 2001) - 1000.0f) * 1e-5f));
  }
}

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : int64_t(1) << 30;  // a multiple of every tile
  const cudaDeviceProp prop = device_properties();
  std::printf("# %s, %d SMs, %lld parameters (%.1f GB moved a step)\n", prop.name, prop.multiProcessorCount,
              static_cast<long long>(n), 28.0 * double(n) / 1e9);
  State s;
  CHECK(cudaMalloc(&s.p, n * 4));
  CHECK(cudaMalloc(&s.m, n * 4));
  CHECK(cudaMalloc(&s.v, n * 4));
  CHECK(cudaMalloc(&s.g, n * 2));
  CHECK(cudaMalloc(&s.w, n * 2));
  const K k{0.9f, 0.95f, 1e-8f, 1.0f - 1e-5f, 1e-4f / 0.1f, 1.0f / std::sqrt(0.05f), 0.5f};
  using Kernel = void (*)(float*, const unsigned short*, float*, float*, unsigned short*, int64_t, K);
  struct Variant {
    const char* name;
    Kernel kernel;
  };
  const Variant variants[] = {{"thread8 cs", thread8<true>},   {"thread8 plain", thread8<false>},
                              {"warp4x2 cs", warp4<true, 2>},  {"warp4x2 plain", warp4<false, 2>},
                              {"warp4x4 cs", warp4<true, 4>},  {"warp4x4 plain", warp4<false, 4>},
                              {"chunked cs", chunked<true>},   {"chunked plain", chunked<false>},
                              {"window cs", window<true>},     {"window plain", window<false>}};
  if (n / kChunk > (1 << 16) || n % kChunk) {
    std::printf("FAIL n must be a multiple of %lld and at most %lld chunks\n", static_cast<long long>(kChunk), 1LL << 16);
    return 1;
  }
  fill_chunks<<<256, 256>>>(n / kChunk);
  // Bits: one step of every variant from the same state equals thread8's.
  const int64_t check_n = int64_t(1) << 22;
  std::vector<float> ref_p, ref_m, ref_v;
  std::vector<unsigned short> ref_w;
  for (const Variant& var : variants) {
    init<<<1024, 256>>>(s, check_n);
    var.kernel<<<512, 256>>>(s.p, s.g, s.m, s.v, s.w, check_n, k);
    CHECK(cudaDeviceSynchronize());
    std::vector<float> hp(check_n), hm(check_n), hv(check_n);
    std::vector<unsigned short> hw(check_n);
    CHECK(cudaMemcpy(hp.data(), s.p, check_n * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hm.data(), s.m, check_n * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hv.data(), s.v, check_n * 4, cudaMemcpyDeviceToHost));
    CHECK(cudaMemcpy(hw.data(), s.w, check_n * 2, cudaMemcpyDeviceToHost));
    if (ref_p.empty()) {
      ref_p = hp, ref_m = hm, ref_v = hv, ref_w = hw;
    } else if (std::memcmp(hp.data(), ref_p.data(), check_n * 4) || std::memcmp(hm.data(), ref_m.data(), check_n * 4) ||
               std::memcmp(hv.data(), ref_v.data(), check_n * 4) || std::memcmp(hw.data(), ref_w.data(), check_n * 2)) {
      std::printf("FAIL %s differs from thread8's bits\n", var.name);
      return 1;
    }
  }
  std::printf("# every variant gives thread8's bits on %lld parameters\n", static_cast<long long>(check_n));
  init<<<4096, 256>>>(s, n);
  CHECK(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (const Variant& var : variants) {
    for (int per_sm : {1, 2, 4, 8}) {
      const unsigned grid = unsigned(prop.multiProcessorCount * per_sm);
      float best = 1e30f;
      for (int r = 0; r < 7; r++) {
        CHECK(cudaEventRecord(a));
        var.kernel<<<grid, 256>>>(s.p, s.g, s.m, s.v, s.w, n, k);
        CHECK(cudaEventRecord(b));
        CHECK(cudaEventSynchronize(b));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, a, b));
        if (r >= 2) best = std::min(best, ms);
      }
      std::printf("RESULT %-14s blocks/SM %d: %8.3f ms %6.0f GB/s (andromeda-3b's 2.48 B: %.2f ms)\n", var.name, per_sm,
                  best, 28.0 * double(n) / (best * 1e-3) / 1e9, best * 2.48e9 / double(n));
    }
  }
  return 0;
}
