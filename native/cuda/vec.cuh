// Vector access for the bandwidth-bound kernels: a Pack<T, W> is W consecutive elements read or
// written with one instruction of sizeof(T)·W bytes (up to 16: W = 16 / sizeof(T) for the widest), or
// a single element when W is 1 (the path for misaligned or odd-sized operands).
#pragma once
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "common.cuh"

namespace andromeda::cuda {

/** The unsigned type of a memory access of B bytes. */
template <int B> struct RawOf;
template <> struct RawOf<2> { using type = uint16_t; };
template <> struct RawOf<4> { using type = uint32_t; };
template <> struct RawOf<8> { using type = uint2; };
template <> struct RawOf<16> { using type = uint4; };

template <typename T, int W>
struct Pack {
  static_assert(sizeof(T) * W <= 16, "a pack is at most 16 bytes");
  T v[W];
};

template <typename T, int W>
__device__ __forceinline__ Pack<T, W> load_pack(const T* p) {
  Pack<T, W> r;
  if constexpr (W == 1) {
    r.v[0] = *p;
  } else {
    using Raw = typename RawOf<int(sizeof(T)) * W>::type;
    const Raw raw = *reinterpret_cast<const Raw*>(p);
    memcpy(&r, &raw, sizeof raw);
  }
  return r;
}

template <typename T, int W>
__device__ __forceinline__ void store_pack(T* p, const Pack<T, W>& r) {
  if constexpr (W == 1) {
    *p = r.v[0];
  } else {
    using Raw = typename RawOf<int(sizeof(T)) * W>::type;
    Raw raw;
    memcpy(&raw, &r, sizeof raw);
    *reinterpret_cast<Raw*>(p) = raw;
  }
}

/** Elements per 16-byte pack of a dtype code. */
inline int pack_elements(int dtype) { return 16 / dtype_bytes(dtype); }

inline bool aligned16(const void* p) { return p == nullptr || (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

/** True when every pointer (nulls ignored) starts on a 16-byte boundary. */
inline bool all_aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace andromeda::cuda

// Calls BODY with `constexpr int W` = the pack width of T when `vectorized`, else 1.
#define ANDROMEDA_CUDA_PACK_WIDTH(T, vectorized, ...)         \
  if (vectorized) {                                           \
    constexpr int W = int(16 / sizeof(T));                    \
    __VA_ARGS__;                                              \
  } else {                                                    \
    constexpr int W = 1;                                      \
    __VA_ARGS__;                                              \
  }
