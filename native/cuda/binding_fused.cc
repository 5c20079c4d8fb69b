// N-API functions of the CUDA engine's fused bandwidth kernels (residual add + norm, bias + GELU,
// many-tensor AdamW, unchecked embedding gather, matrix product with a bias epilogue), added to the
// engine's exports by register_fused. Argument order matches the CPU engine's binding_fused.cc, function
// for function; the kernels are the CUDA forms in native/fused/<op>/cuda.cu.
#include <napi.h>

#include <stdexcept>
#include <vector>

#include "../common/fused_napi.h"
#include "engine.h"

namespace andromeda::cuda {
namespace {

using namespace andromeda::napi_args;

constexpr char kEngine[] = "cuda engine";

// (params[], gradDtypes[], grads[], ms[], vs[], counts[], shadowDtypes[], shadows[] (0: none),
//  lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale)
Napi::Value AdamWMany(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
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
  return guarded(info, kEngine, [&] {
    embedding_gather(i32(info[0]), ptr_of(info[1]), reinterpret_cast<const int32_t*>(ptr_of(info[2])), ptr_of(info[3]),
                     i64(info[4]), i64(info[5]), i64(info[6]));
  });
}

// (dtype, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch, bias)
Napi::Value GemmBias(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    GemmArgs g = gemm_args<GemmArgs>(info);
    g.bias = ptr_of(info[18]);
    gemm(g);
  });
}

// (dtype, batch, n, heads, dim, eps, x, g | null, y, rstd)
Napi::Value HeadNorm(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    const HeadNormArgs a{i32(info[0]), i64(info[1]), i64(info[2]), i64(info[3]), i64(info[4]), f64(info[5])};
    head_norm(a, ptr_of(info[6]), opt_ptr(info[7]), ptr_of(info[8]), ptr_of(info[9]));
  });
}

// (dtype, batch, n, heads, dim, eps, x, g | null, rstd, gy, gx, gradG | null)
Napi::Value HeadNormGrad(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    const HeadNormArgs a{i32(info[0]), i64(info[1]), i64(info[2]), i64(info[3]), i64(info[4]), f64(info[5])};
    head_norm_grad(a, ptr_of(info[6]), opt_ptr(info[7]), ptr_of(info[8]), ptr_of(info[9]),
                   ptr_of(info[10]), opt_ptr(info[11]));
  });
}

// (dtype, x, out, batch, n, dim, shifts, backward)
Napi::Value TokenShift(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    token_shift(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), reinterpret_cast<const int32_t*>(opt_ptr(info[9])), i64(info[3]),
                i64(info[4]), i64(info[5]), i32(info[6]), flag(info[7]), flag(info[8]));
  });
}

}  // namespace

void register_fused(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> functions[] = {
      {"adamwMany", AdamWMany}, {"embeddingGather", EmbeddingGather}, {"gemmBias", GemmBias},
      {"headNorm", HeadNorm}, {"headNormGrad", HeadNormGrad}, {"tokenShift", TokenShift},
  };
  for (const auto& [name, fn] : functions) exports.Set(name, Napi::Function::New(env, fn, name));
  napi_args::NormGeluBinding<kEngine, add_norm, add_norm_grad, bias_gelu, bias_gelu_grad>::register_into(env, exports);
}

}  // namespace andromeda::cuda
