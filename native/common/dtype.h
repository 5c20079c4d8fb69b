// Element types shared by the native engines; codes match src/tensor/dtype.ts (DTYPE_CODE).
#pragma once
#include <cstdint>
#include <stdexcept>
#include <cstring>

namespace andromeda {

enum class DType : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3, I32 = 4 };

struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };

inline float bf16_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x007fffffu)) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_to_float(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do { mant <<= 1; e++; } while (!(mant & 0x400));
      u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 0x1f) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | (exp + 127 - 15) << 23 | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t float_to_f16(float value) {
  uint32_t x;
  std::memcpy(&x, &value, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  int exp = int((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffff;
  if (exp == 0xff) return uint16_t(sign | 0x7c00 | (mant ? 0x200 : 0));
  int e = exp - 127 + 15;
  if (e >= 0x1f) return uint16_t(sign | 0x7c00);
  if (e <= 0) {
    if (e < -10) return uint16_t(sign);
    mant |= 0x800000;
    int shift = 14 - e;
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) half++;
    return uint16_t(sign | half);
  }
  uint32_t half = uint32_t(e) << 10 | (mant >> 13);
  uint32_t rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
  return uint16_t(sign | half);
}

// Storage type → the type arithmetic is done in (half types compute in float).
template <typename T> struct Compute { using type = T; };
template <> struct Compute<bf16> { using type = float; };
template <> struct Compute<f16> { using type = float; };
template <> struct Compute<int32_t> { using type = double; };

template <typename T> inline typename Compute<T>::type load(const T* p) { return *p; }
template <> inline float load<bf16>(const bf16* p) { return bf16_to_float(p->bits); }
template <> inline float load<f16>(const f16* p) { return f16_to_float(p->bits); }
template <> inline double load<int32_t>(const int32_t* p) { return double(*p); }

template <typename T, typename V> inline void store(T* p, V v) { *p = T(v); }
template <> inline void store<bf16, float>(bf16* p, float v) { p->bits = float_to_bf16(v); }
template <> inline void store<bf16, double>(bf16* p, double v) { p->bits = float_to_bf16(float(v)); }
template <> inline void store<f16, float>(f16* p, float v) { p->bits = float_to_f16(v); }
template <> inline void store<f16, double>(f16* p, double v) { p->bits = float_to_f16(float(v)); }
template <> inline void store<int32_t, double>(int32_t* p, double v) { *p = int32_t(v); }
template <> inline void store<int32_t, float>(int32_t* p, float v) { *p = int32_t(v); }

inline int dtype_bytes(DType d) {
  switch (d) {
    case DType::F32: case DType::I32: return 4;
    case DType::F64: return 8;
    default: return 2;
  }
}

}  // namespace andromeda

// Calls BODY with `T` bound to the storage type of the float dtype `code` (int32 where INT is allowed).
#define ANDROMEDA_DISPATCH_FLOAT(code, ...)                                      \
  switch (::andromeda::DType(code)) {                                            \
    case ::andromeda::DType::F32: { using T = float; __VA_ARGS__; break; }       \
    case ::andromeda::DType::F64: { using T = double; __VA_ARGS__; break; }      \
    case ::andromeda::DType::BF16: { using T = ::andromeda::bf16; __VA_ARGS__; break; } \
    case ::andromeda::DType::F16: { using T = ::andromeda::f16; __VA_ARGS__; break; }   \
    default: throw std::invalid_argument("this kernel needs a floating dtype");  \
  }

#define ANDROMEDA_DISPATCH_ALL(code, ...)                                        \
  switch (::andromeda::DType(code)) {                                            \
    case ::andromeda::DType::F32: { using T = float; __VA_ARGS__; break; }       \
    case ::andromeda::DType::F64: { using T = double; __VA_ARGS__; break; }      \
    case ::andromeda::DType::BF16: { using T = ::andromeda::bf16; __VA_ARGS__; break; } \
    case ::andromeda::DType::F16: { using T = ::andromeda::f16; __VA_ARGS__; break; }   \
    case ::andromeda::DType::I32: { using T = int32_t; __VA_ARGS__; break; }     \
    default: throw std::invalid_argument("unknown dtype code");                  \
  }
