// N-API functions of the residual-add + norm and bias + GELU kernels, shared by both engines' bindings: each
// instantiates register_norm_gelu with its own kernels and engine label (native/cpu/binding_fused.cc,
// native/cuda/binding_fused.cc), so the argument order is one and the same.
#pragma once
#include <napi.h>

#include "add_norm_args.h"
#include "napi_args.h"

namespace andromeda::napi_args {

using AddNormFn = void (*)(const AddNormArgs&, char*, char*, char*);
using AddNormGradFn = void (*)(const AddNormArgs&, const char*, const char*, char*, char*, char*, char*, char*);
using BiasGeluFn = void (*)(int, const char*, const char*, char*, int64_t, int64_t);
using BiasGeluGradFn = void (*)(int, const char*, const char*, const char*, char*, char*, int64_t, int64_t);

// (rms, dtype, a, b|null, scale|null, c, weight|null, bias|null, ...) — the leading arguments of both norm calls.
inline AddNormArgs add_norm_args(const Napi::CallbackInfo& info, bool with_bias, int64_t rows, int64_t cols, double eps) {
  AddNormArgs a{};
  a.rms = flag(info[0]);
  a.dtype = i32(info[1]);
  a.a = ptr_of(info[2]);
  a.b = opt_ptr(info[3]);
  a.scale = opt_ptr(info[4]);
  a.c = f64(info[5]);
  a.weight = opt_ptr(info[6]);
  a.bias = with_bias ? opt_ptr(info[7]) : nullptr;
  a.rows = rows;
  a.cols = cols;
  a.eps = eps;
  return a;
}

template <const char* Engine, AddNormFn add_norm, AddNormGradFn add_norm_grad, BiasGeluFn bias_gelu, BiasGeluGradFn bias_gelu_grad>
struct NormGeluBinding {
  // (rms, dtype, a, b|null, scale|null, c, weight|null, bias|null, out, sum|null, stats, rows, cols, eps)
  static Napi::Value AddNorm(const Napi::CallbackInfo& info) {
    return guarded(info, Engine, [&] {
      const AddNormArgs a = add_norm_args(info, true, i64(info[11]), i64(info[12]), f64(info[13]));
      add_norm(a, ptr_of(info[8]), opt_ptr(info[9]), ptr_of(info[10]));
    });
  }

  // (rms, dtype, a, b|null, scale|null, c, weight|null, stats, gy, ga, gb|null, gscale|null, gw|null, gbias|null, rows, cols)
  static Napi::Value AddNormGrad(const Napi::CallbackInfo& info) {
    return guarded(info, Engine, [&] {
      const AddNormArgs a = add_norm_args(info, false, i64(info[14]), i64(info[15]), 0);
      add_norm_grad(a, ptr_of(info[7]), ptr_of(info[8]), ptr_of(info[9]), opt_ptr(info[10]), opt_ptr(info[11]),
                    opt_ptr(info[12]), opt_ptr(info[13]));
    });
  }

  // (dtype, x, bias, out, rows, cols)
  static Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
    return guarded(info, Engine, [&] {
      bias_gelu(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]));
    });
  }

  // (dtype, x, bias, gy, gx, gbias|null, rows, cols)
  static Napi::Value BiasGeluGrad(const Napi::CallbackInfo& info) {
    return guarded(info, Engine, [&] {
      bias_gelu_grad(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), ptr_of(info[4]), opt_ptr(info[5]),
                     i64(info[6]), i64(info[7]));
    });
  }

  static void register_into(Napi::Env env, Napi::Object exports) {
    exports.Set("addNorm", Napi::Function::New(env, AddNorm, "addNorm"));
    exports.Set("addNormGrad", Napi::Function::New(env, AddNormGrad, "addNormGrad"));
    exports.Set("biasGelu", Napi::Function::New(env, BiasGelu, "biasGelu"));
    exports.Set("biasGeluGrad", Napi::Function::New(env, BiasGeluGrad, "biasGeluGrad"));
  }
};

}  // namespace andromeda::napi_args
