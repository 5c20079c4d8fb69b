// N-API functions of the CUDA engine's fused bandwidth kernels (residual add + norm, bias + GELU,
// many-tensor AdamW, unchecked embedding gather, matrix product with a bias epilogue), added to the
// engine's exports by register_fused. Argument order matches the CPU engine's binding_fused.cc where
// both have the function.
#include <napi.h>

#include <stdexcept>
#include <vector>

#include "../common/napi_args.h"
#include "engine.h"

namespace andromeda::cuda {
namespace {

using namespace andromeda::napi_args;

// (rms, dtype, a, b|null, scale|null, c, weight|null, bias|null, ...) — the leading arguments of both norm calls.
AddNormArgs add_norm_args(const Napi::CallbackInfo& info, bool with_bias, int64_t rows, int64_t cols, double eps) {
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

// (rms, dtype, a, b|null, scale|null, c, weight|null, bias|null, out, sum|null, stats, rows, cols, eps)
Napi::Value AddNorm(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const AddNormArgs a = add_norm_args(info, true, i64(info[11]), i64(info[12]), f64(info[13]));
    add_norm(a, ptr_of(info[8]), opt_ptr(info[9]), ptr_of(info[10]));
  });
}

// (rms, dtype, a, b|null, scale|null, c, weight|null, stats, gy, ga, gb|null, gscale|null, gw|null, gbias|null, rows, cols)
Napi::Value AddNormGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const AddNormArgs a = add_norm_args(info, false, i64(info[14]), i64(info[15]), 0);
    add_norm_grad(a, ptr_of(info[7]), ptr_of(info[8]), ptr_of(info[9]), opt_ptr(info[10]), opt_ptr(info[11]),
                  opt_ptr(info[12]), opt_ptr(info[13]));
  });
}

// (dtype, x, bias, out, rows, cols)
Napi::Value BiasGelu(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    bias_gelu(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]));
  });
}

// (dtype, x, bias, gy, gx, gbias|null, rows, cols)
Napi::Value BiasGeluGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    bias_gelu_grad(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), ptr_of(info[4]), opt_ptr(info[5]),
                   i64(info[6]), i64(info[7]));
  });
}

// (params[], gradDtypes[], grads[], ms[], vs[], counts[], shadowDtypes[], shadows[] (0: none),
//  lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale)
Napi::Value AdamWMany(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const auto params = int_array(info[0]), grad_dtypes = int_array(info[1]), grads = int_array(info[2]);
    const auto ms = int_array(info[3]), vs = int_array(info[4]), counts = int_array(info[5]);
    const auto shadow_dtypes = int_array(info[6]), shadows = int_array(info[7]);
    const size_t n = params.size();
    for (const auto* list : {&grad_dtypes, &grads, &ms, &vs, &counts, &shadow_dtypes, &shadows})
      if (list->size() != n) throw std::invalid_argument("adamwMany: the tensor lists differ in length");
    std::vector<AdamWTensorArgs> tensors(n);
    auto addr = [](int64_t v) { return reinterpret_cast<char*>(uintptr_t(v)); };
    for (size_t i = 0; i < n; i++) {
      tensors[i] = {reinterpret_cast<float*>(addr(params[i])), int(grad_dtypes[i]), addr(grads[i]),
                    reinterpret_cast<float*>(addr(ms[i])), reinterpret_cast<float*>(addr(vs[i])), counts[i],
                    int(shadow_dtypes[i]), shadows[i] ? addr(shadows[i]) : nullptr};
    }
    const AdamWArgs a{f64(info[8]), f64(info[9]), f64(info[10]), f64(info[11]), f64(info[12]), f64(info[13]), f64(info[14]), f64(info[15])};
    adamw_many(tensors.data(), n, a);
  });
}

// (dtype, table, ids, out, count, dim, vocab)
Napi::Value EmbeddingGather(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    embedding_gather(i32(info[0]), ptr_of(info[1]), reinterpret_cast<const int32_t*>(ptr_of(info[2])), ptr_of(info[3]),
                     i64(info[4]), i64(info[5]), i64(info[6]));
  });
}

// (dtype, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch, bias)
Napi::Value GemmBias(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    GemmArgs g;
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
    g.bias = ptr_of(info[18]);
    gemm(g);
  });
}

}  // namespace

void register_fused(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> functions[] = {
      {"addNorm", AddNorm}, {"addNormGrad", AddNormGrad}, {"biasGelu", BiasGelu}, {"biasGeluGrad", BiasGeluGrad},
      {"adamwMany", AdamWMany}, {"embeddingGather", EmbeddingGather}, {"gemmBias", GemmBias},
  };
  for (const auto& [name, fn] : functions) exports.Set(name, Napi::Function::New(env, fn, name));
}

}  // namespace andromeda::cuda
