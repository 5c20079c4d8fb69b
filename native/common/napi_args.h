// Reading N-API arguments in the engines' bindings: buffer addresses (doubles holding up to 53 bits),
// numbers, flags, stride arrays, and a guard that turns C++ exceptions into JavaScript errors.
#pragma once
#include <napi.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace andromeda::napi_args {

inline char* ptr_of(const Napi::Value& v) { return reinterpret_cast<char*>(uintptr_t(v.As<Napi::Number>().DoubleValue())); }
inline int64_t i64(const Napi::Value& v) { return int64_t(v.As<Napi::Number>().DoubleValue()); }
inline int i32(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }
inline double f64(const Napi::Value& v) { return v.As<Napi::Number>().DoubleValue(); }
inline bool flag(const Napi::Value& v) { return v.As<Napi::Boolean>().Value(); }
/** An optional buffer: a number is an address, anything else (null) is no buffer. */
inline char* opt_ptr(const Napi::Value& v) { return v.IsNumber() ? ptr_of(v) : nullptr; }

inline std::vector<int64_t> int_array(const Napi::Value& v) {
  Napi::Array arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = int64_t(arr.Get(i).As<Napi::Number>().DoubleValue());
  return out;
}

/**
 * The matrix-product arguments both engines' bindings take, in this order: (dtype, transA, transB, m, n, k, alpha,
 * a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch). G is the engine's GemmArgs (same field names).
 */
template <typename G>
G gemm_args(const Napi::CallbackInfo& info) {
  G g{};
  g.dtype = i32(info[0]);
  g.trans_a = flag(info[1]);
  g.trans_b = flag(info[2]);
  g.m = i64(info[3]); g.n = i64(info[4]); g.k = i64(info[5]);
  g.alpha = f64(info[6]);
  g.a = ptr_of(info[7]); g.lda = i64(info[8]); g.stride_a = i64(info[9]);
  g.b = ptr_of(info[10]); g.ldb = i64(info[11]); g.stride_b = i64(info[12]);
  g.beta = f64(info[13]);
  g.c = ptr_of(info[14]); g.ldc = i64(info[15]); g.stride_c = i64(info[16]);
  g.batch = i64(info[17]);
  return g;
}

/**
 * Runs a kernel call, turning C++ exceptions into JavaScript errors prefixed with `engine` instead of
 * aborting the process; std::range_error (out of memory) becomes a RangeError. `fn` may return a
 * Napi::Value or nothing (then the call returns undefined).
 */
template <typename Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* engine, Fn fn) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn>>) {
      fn();
      return info.Env().Undefined();
    } else {
      return fn();
    }
  } catch (const std::range_error& e) {
    Napi::RangeError::New(info.Env(), std::string(engine) + ": " + e.what()).ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), std::string(engine) + ": " + e.what()).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

}  // namespace andromeda::napi_args
