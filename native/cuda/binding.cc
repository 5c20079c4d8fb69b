// N-API surface of the CUDA engine: device setup, memory, and one function per kernel, with the
// same argument order as the CPU engine's binding. Buffers are device addresses passed as doubles
// (they fit in 53 bits). Every C++ exception becomes a JavaScript error; nothing aborts the process.
#include <napi.h>

#include <stdexcept>
#include <vector>

#include "../common/napi_args.h"
#include "../common/reference_attention_napi.h"
#include "engine.h"
#include "reference_attention.h"

namespace cu = andromeda::cuda;
using namespace andromeda::napi_args;

namespace {

const int32_t* ids_of(const Napi::Value& v) { return reinterpret_cast<const int32_t*>(ptr_of(v)); }

#define VOID_KERNEL(name, ...)                                  \
  Napi::Value name(const Napi::CallbackInfo& info) {            \
    return guarded(info, "cuda engine", [&] {                                  \
      __VA_ARGS__;                                              \
      return info.Env().Undefined();                            \
    });                                                         \
  }

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] { return Napi::Number::New(info.Env(), cu::device_count()); });
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    cu::init(i32(info[0]));
    return Napi::String::New(info.Env(), cu::device_description());
  });
}

Napi::Value GemmLibrary(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] { return Napi::String::New(info.Env(), cu::gemm_library()); });
}

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] { return Napi::Number::New(info.Env(), double(uintptr_t(cu::alloc(size_t(i64(info[0])))))); });
}

VOID_KERNEL(Free, cu::free(ptr_of(info[0])))
VOID_KERNEL(Synchronize, cu::synchronize())
VOID_KERNEL(ResetPeak, cu::reset_peak())
VOID_KERNEL(EmptyCache, cu::empty_cache())
Napi::Value TimingMark(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] { return Napi::Number::New(info.Env(), cu::timing_mark()); });
}

Napi::Value TimingRead(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const std::vector<double> ms = cu::timing_read();
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), ms.size());
    for (size_t i = 0; i < ms.size(); i++) out[i] = ms[i];
    return out;
  });
}

VOID_KERNEL(SetMemoryLimit, cu::set_memory_limit(size_t(i64(info[0]))))

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const cu::MemoryStats s = cu::memory_stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("allocated", double(s.allocated));
    o.Set("peakAllocated", double(s.peak));
    o.Set("reserved", double(s.reserved));
    o.Set("liveBlocks", double(s.live_blocks));
    o.Set("cachedBlocks", double(s.cached_blocks));
    o.Set("deviceFree", double(s.device_free));
    o.Set("deviceTotal", double(s.device_total));
    return o;
  });
}

// upload(dst, byteOffset, typedArray)
VOID_KERNEL(Upload, {
  Napi::TypedArray arr = info[2].As<Napi::TypedArray>();
  const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  cu::upload(ptr_of(info[0]) + i64(info[1]), src, arr.ByteLength());
})

// download(src, byteOffset, bytes) -> ArrayBuffer
Napi::Value Download(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const size_t bytes = size_t(i64(info[2]));
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), bytes);
    cu::download(out.Data(), ptr_of(info[0]) + i64(info[1]), bytes);
    return out;
  });
}

// (srcDtype, src, srcStrides, dstDtype, dst, dstStrides, shape)
VOID_KERNEL(Copy, {
  auto ss = int_array(info[2]), ds = int_array(info[5]), shape = int_array(info[6]);
  cu::copy_strided(i32(info[0]), ptr_of(info[1]), ss.data(), i32(info[3]), ptr_of(info[4]), ds.data(), shape.data(), int(shape.size()));
})
// (dtype, dst, count, value)
VOID_KERNEL(Fill, cu::fill(i32(info[0]), ptr_of(info[1]), i64(info[2]), f64(info[3])))
// (op, dtype, x, out, count, scalar)
VOID_KERNEL(Unary, cu::unary(i32(info[0]), i32(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), f64(info[5])))
// (op, dtype, x, gy, gx, count)
VOID_KERNEL(UnaryGrad, cu::unary_grad(i32(info[0]), i32(info[1]), ptr_of(info[2]), ptr_of(info[3]), ptr_of(info[4]), i64(info[5])))
// (op, dtype, a, aStrides, b, bStrides, out, shape)
VOID_KERNEL(Binary, {
  auto sa = int_array(info[3]), sb = int_array(info[5]), shape = int_array(info[7]);
  cu::binary(i32(info[0]), i32(info[1]), ptr_of(info[2]), sa.data(), ptr_of(info[4]), sb.data(), ptr_of(info[6]), shape.data(), int(shape.size()));
})
// (op, dtype, x, out, outer, size, inner)
VOID_KERNEL(Reduce, cu::reduce(i32(info[0]), i32(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]), i64(info[6])))

// (dtype, transA, transB, m, n, k, alpha, a, lda, strideA, b, ldb, strideB, beta, c, ldc, strideC, batch)
VOID_KERNEL(Gemm, cu::gemm(gemm_args<cu::GemmArgs>(info)))

// (dtype, x, out, rows, cols, log)
VOID_KERNEL(Softmax, cu::softmax(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), i64(info[3]), i64(info[4]), flag(info[5])))
// (dtype, y, gy, gx, rows, cols, log)
VOID_KERNEL(SoftmaxGrad, cu::softmax_grad(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]), flag(info[6])))
// (rms, dtype, x, weight|null, bias|null, out, stats, rows, cols, eps)
VOID_KERNEL(Norm, cu::norm(flag(info[0]), i32(info[1]), ptr_of(info[2]), opt_ptr(info[3]), opt_ptr(info[4]), ptr_of(info[5]),
                           ptr_of(info[6]), i64(info[7]), i64(info[8]), f64(info[9])))
// (rms, dtype, x, weight|null, stats, gy, gx, gw|null, gb|null, rows, cols)
VOID_KERNEL(NormGrad, cu::norm_grad(flag(info[0]), i32(info[1]), ptr_of(info[2]), opt_ptr(info[3]), ptr_of(info[4]), ptr_of(info[5]),
                                    ptr_of(info[6]), opt_ptr(info[7]), opt_ptr(info[8]), i64(info[9]), i64(info[10])))
// (dtype, logits, targets, losses, lse, rows, vocab, ignore)
VOID_KERNEL(CrossEntropy, cu::cross_entropy(i32(info[0]), ptr_of(info[1]), ids_of(info[2]), ptr_of(info[3]), ptr_of(info[4]),
                                            i64(info[5]), i64(info[6]), i64(info[7])))
// (dtype, logits, targets, lse, gradLoss, gradLogits, rows, vocab, ignore)
VOID_KERNEL(CrossEntropyGrad, cu::cross_entropy_grad(i32(info[0]), ptr_of(info[1]), ids_of(info[2]), ptr_of(info[3]), ptr_of(info[4]),
                                                     ptr_of(info[5]), i64(info[6]), i64(info[7]), i64(info[8])))

// (dtype, table, ids, out, count, dim, vocab) -> first bad position or -1
Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const int64_t bad = cu::embedding(i32(info[0]), ptr_of(info[1]), ids_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]), i64(info[6]));
    return Napi::Number::New(info.Env(), double(bad));
  });
}
// (dtype, ids, gy, gtable, count, dim)
VOID_KERNEL(EmbeddingGrad, cu::embedding_grad(i32(info[0]), ids_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5])))
// (dtype, x, out, count, p, seed)
VOID_KERNEL(Dropout, cu::dropout(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), i64(info[3]), f64(info[4]), uint64_t(f64(info[5]))))
// (dtype, dst, count, normal, a, b, seed)
VOID_KERNEL(RandomFill, cu::random_fill(i32(info[0]), ptr_of(info[1]), i64(info[2]), info[3].ToBoolean().Value(), f64(info[4]), f64(info[5]), uint64_t(f64(info[6]))))
// (param, gradDtype, grad, m, v, count, lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale[, shadowDtype, shadow])
VOID_KERNEL(AdamW, {
  cu::AdamWArgs a{f64(info[6]), f64(info[7]), f64(info[8]), f64(info[9]), f64(info[10]), f64(info[11]), f64(info[12]), f64(info[13])};
  const bool shadow = info.Length() > 15 && info[15].IsNumber();
  cu::adamw(reinterpret_cast<float*>(ptr_of(info[0])), i32(info[1]), ptr_of(info[2]), reinterpret_cast<float*>(ptr_of(info[3])),
            reinterpret_cast<float*>(ptr_of(info[4])), i64(info[5]), a, shadow ? i32(info[14]) : 0, shadow ? ptr_of(info[15]) : nullptr);
})
// (dtype, x, count) -> number
Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] { return Napi::Number::New(info.Env(), cu::sum_of_squares(i32(info[0]), ptr_of(info[1]), i64(info[2]))); });
}

}  // namespace

// attentionForward / attentionBackward (native/cuda/attention/binding_attention.cc).
namespace andromeda::cuda { void register_attention(Napi::Env env, Napi::Object exports); }
// addNorm, biasGelu, adamwMany, … (native/cuda/binding_fused.cc).
namespace andromeda::cuda { void register_fused(Napi::Env env, Napi::Object exports); }

namespace {

// (dtypes[], ptrs[], counts[]) -> number
Napi::Value SumOfSquaresMany(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    auto dtypes = int_array(info[0]), ptrs = int_array(info[1]), counts = int_array(info[2]);
    if (dtypes.size() != ptrs.size() || ptrs.size() != counts.size()) throw std::invalid_argument("sumOfSquaresMany: array lengths differ");
    std::vector<andromeda::SquaresInput> inputs(dtypes.size());
    for (size_t i = 0; i < inputs.size(); i++)
      inputs[i] = {int(dtypes[i]), reinterpret_cast<const char*>(uintptr_t(ptrs[i])), counts[i]};
    return Napi::Number::New(info.Env(), cu::sum_of_squares_many(inputs.data(), inputs.size()));
  });
}

// ---- Reference attention form: masked softmax over explicit scores, rotary/xPos (masked_softmax.cu, rotary.cu) ----
// maskedSoftmax(dtype, scores, out, config) and rotary(dtype, x, out, config); configs as in src/engine/native-engine.ts.
VOID_KERNEL(MaskedSoftmax, cu::masked_softmax(masked_softmax_args(info[0], info[3]), ptr_of(info[1]), ptr_of(info[2])))
VOID_KERNEL(Rotary, cu::rotary(rotary_args(info[0], info[3]), ptr_of(info[1]), ptr_of(info[2])))

void register_reference_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("maskedSoftmax", Napi::Function::New(env, MaskedSoftmax, "maskedSoftmax"));
  exports.Set("rotary", Napi::Function::New(env, Rotary, "rotary"));
}
// ---- end of the reference attention form ----

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> functions[] = {
      {"deviceCount", DeviceCount}, {"init", Init}, {"gemmLibrary", GemmLibrary},
      {"alloc", Alloc}, {"free", Free}, {"synchronize", Synchronize}, {"memoryStats", MemoryStats},
      {"resetPeakMemory", ResetPeak}, {"emptyCache", EmptyCache}, {"setMemoryLimit", SetMemoryLimit},
      {"timingMark", TimingMark}, {"timingRead", TimingRead},
      {"upload", Upload}, {"download", Download}, {"copy", Copy}, {"fill", Fill}, {"unary", Unary},
      {"unaryGrad", UnaryGrad}, {"binary", Binary}, {"reduce", Reduce}, {"gemm", Gemm}, {"softmax", Softmax},
      {"softmaxGrad", SoftmaxGrad}, {"norm", Norm}, {"normGrad", NormGrad}, {"crossEntropy", CrossEntropy},
      {"crossEntropyGrad", CrossEntropyGrad}, {"embedding", Embedding}, {"embeddingGrad", EmbeddingGrad},
      {"dropout", Dropout}, {"randomFill", RandomFill}, {"adamw", AdamW}, {"sumOfSquares", SumOfSquares}, {"sumOfSquaresMany", SumOfSquaresMany},
  };
  for (const auto& [name, fn] : functions) exports.Set(name, Napi::Function::New(env, fn, name));
  cu::register_attention(env, exports);
  register_reference_attention(env, exports);
  cu::register_fused(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(andromeda_cuda, Register)
