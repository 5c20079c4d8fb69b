// N-API surface of the CPU engine: buffer management and one function per kernel. Buffers are
// 64-byte-aligned heap blocks addressed from JavaScript by their address (a double holds 53 bits).
#include <napi.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "../common/dtype.h"
#include "../common/napi_args.h"
#include "../common/reference_attention_napi.h"
#include "attention_reference.h"
#include "gemm.h"
#include "kernels.h"
#include "parallel.h"
#include "simd.h"

using namespace andromeda;
using namespace andromeda::napi_args;

namespace {

std::mutex g_mutex;
std::unordered_map<uintptr_t, size_t> g_sizes;
size_t g_allocated = 0, g_peak = 0;

Napi::Value Alloc(const Napi::CallbackInfo& info) {
  const size_t bytes = size_t(i64(info[0]));
  const size_t rounded = ((bytes ? bytes : 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) {
    Napi::RangeError::New(info.Env(), "cpu engine: out of memory allocating " + std::to_string(bytes) + " bytes (" +
                                          std::to_string(g_allocated) + " bytes already held by tensors)")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    g_sizes[uintptr_t(p)] = rounded;
    g_allocated += rounded;
    if (g_allocated > g_peak) g_peak = g_allocated;
  }
  return Napi::Number::New(info.Env(), double(uintptr_t(p)));
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  char* p = ptr_of(info[0]);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_sizes.find(uintptr_t(p));
    if (it == g_sizes.end()) {
      Napi::Error::New(info.Env(), "cpu engine: free of an unknown buffer (double free?)").ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
    g_allocated -= it->second;
    g_sizes.erase(it);
  }
  std::free(p);
  return info.Env().Undefined();
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("allocated", double(g_allocated));
  o.Set("peakAllocated", double(g_peak));
  o.Set("reserved", double(g_allocated));
  return o;
}

Napi::Value ResetPeak(const Napi::CallbackInfo& info) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_peak = g_allocated;
  return info.Env().Undefined();
}

// upload(dst, byteOffset, typedArray)
Napi::Value Upload(const Napi::CallbackInfo& info) {
  char* dst = ptr_of(info[0]) + i64(info[1]);
  Napi::TypedArray arr = info[2].As<Napi::TypedArray>();
  const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
  std::memcpy(dst, src, arr.ByteLength());
  return info.Env().Undefined();
}

// download(src, byteOffset, bytes) -> ArrayBuffer
Napi::Value Download(const Napi::CallbackInfo& info) {
  const char* src = ptr_of(info[0]) + i64(info[1]);
  const size_t bytes = size_t(i64(info[2]));
  Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), bytes);
  std::memcpy(out.Data(), src, bytes);
  return out;
}

Napi::Value Copy(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {
    // (srcDtype, src, srcStrides, dstDtype, dst, dstStrides, shape)
    auto ss = int_array(info[2]), ds = int_array(info[5]), shape = int_array(info[6]);
    cpu::copy_strided(i32(info[0]), ptr_of(info[1]), ss.data(), i32(info[3]), ptr_of(info[4]), ds.data(), shape.data(), int(shape.size()));
    return info.Env().Undefined();
  });
}

Napi::Value Fill(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {
    cpu::fill(i32(info[0]), ptr_of(info[1]), i64(info[2]), f64(info[3]));
    return info.Env().Undefined();
  });
}

Napi::Value Unary(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (op, dtype, x, out, count, scalar)
    cpu::unary(i32(info[0]), i32(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), f64(info[5]));
    return info.Env().Undefined();
  });
}

Napi::Value UnaryGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (op, dtype, x, gy, gx, count)
    cpu::unary_grad(i32(info[0]), i32(info[1]), ptr_of(info[2]), ptr_of(info[3]), ptr_of(info[4]), i64(info[5]));
    return info.Env().Undefined();
  });
}

Napi::Value Binary(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (op, dtype, a, aStrides, b, bStrides, out, shape)
    auto sa = int_array(info[3]), sb = int_array(info[5]), shape = int_array(info[7]);
    cpu::binary(i32(info[0]), i32(info[1]), ptr_of(info[2]), sa.data(), ptr_of(info[4]), sb.data(), ptr_of(info[6]), shape.data(), int(shape.size()));
    return info.Env().Undefined();
  });
}

Napi::Value Reduce(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (op, dtype, x, out, outer, size, inner)
    cpu::reduce(i32(info[0]), i32(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]), i64(info[6]));
    return info.Env().Undefined();
  });
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {
    cpu::gemm(gemm_args<cpu::GemmArgs>(info));
    return info.Env().Undefined();
  });
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, x, out, rows, cols, log)
    cpu::softmax(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), i64(info[3]), i64(info[4]), info[5].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  });
}

Napi::Value SoftmaxGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, y, gy, gx, rows, cols, log)
    cpu::softmax_grad(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), i64(info[4]), i64(info[5]), info[6].As<Napi::Boolean>().Value());
    return info.Env().Undefined();
  });
}

Napi::Value Norm(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (rms, dtype, x, weight|null, bias|null, out, stats, rows, cols, eps)
    cpu::norm(info[0].As<Napi::Boolean>().Value(), i32(info[1]), ptr_of(info[2]), opt_ptr(info[3]), opt_ptr(info[4]),
              ptr_of(info[5]), ptr_of(info[6]), i64(info[7]), i64(info[8]), f64(info[9]));
    return info.Env().Undefined();
  });
}

Napi::Value NormGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (rms, dtype, x, weight|null, stats, gy, gx, gw|null, gb|null, rows, cols)
    cpu::norm_grad(info[0].As<Napi::Boolean>().Value(), i32(info[1]), ptr_of(info[2]), opt_ptr(info[3]), ptr_of(info[4]),
                   ptr_of(info[5]), ptr_of(info[6]), opt_ptr(info[7]), opt_ptr(info[8]), i64(info[9]), i64(info[10]));
    return info.Env().Undefined();
  });
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, logits, targets, losses, lse, rows, vocab, ignore)
    cpu::cross_entropy(i32(info[0]), ptr_of(info[1]), reinterpret_cast<const int32_t*>(ptr_of(info[2])), ptr_of(info[3]),
                       ptr_of(info[4]), i64(info[5]), i64(info[6]), i64(info[7]));
    return info.Env().Undefined();
  });
}

Napi::Value CrossEntropyGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, logits, targets, lse, gradLoss, gradLogits, rows, vocab, ignore)
    cpu::cross_entropy_grad(i32(info[0]), ptr_of(info[1]), reinterpret_cast<const int32_t*>(ptr_of(info[2])), ptr_of(info[3]),
                            ptr_of(info[4]), ptr_of(info[5]), i64(info[6]), i64(info[7]), i64(info[8]));
    return info.Env().Undefined();
  });
}

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, table, ids, out, count, dim, vocab) -> bad position or -1
    const int64_t bad = cpu::embedding(i32(info[0]), ptr_of(info[1]), reinterpret_cast<const int32_t*>(ptr_of(info[2])),
                                       ptr_of(info[3]), i64(info[4]), i64(info[5]), i64(info[6]));
    return Napi::Number::New(info.Env(), double(bad));
  });
}

Napi::Value EmbeddingGrad(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, ids, gy, gtable, count, dim)
    cpu::embedding_grad(i32(info[0]), reinterpret_cast<const int32_t*>(ptr_of(info[1])), ptr_of(info[2]), ptr_of(info[3]),
                        i64(info[4]), i64(info[5]));
    return info.Env().Undefined();
  });
}

Napi::Value RandomFill(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, dst, count, normal, a, b, seed)
    cpu::random_fill(i32(info[0]), ptr_of(info[1]), i64(info[2]), info[3].ToBoolean().Value(), f64(info[4]), f64(info[5]),
                     uint64_t(f64(info[6])));
    return info.Env().Undefined();
  });
}

Napi::Value Dropout(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, x, out, count, p, seed)
    cpu::dropout(i32(info[0]), ptr_of(info[1]), ptr_of(info[2]), i64(info[3]), f64(info[4]), uint64_t(f64(info[5])));
    return info.Env().Undefined();
  });
}

Napi::Value AdamW(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {
    // (param, gradDtype, grad, m, v, count, lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale)
    cpu::AdamWArgs a{f64(info[6]), f64(info[7]), f64(info[8]), f64(info[9]), f64(info[10]), f64(info[11]), f64(info[12]), f64(info[13])};
    cpu::adamw(reinterpret_cast<float*>(ptr_of(info[0])), i32(info[1]), ptr_of(info[2]), reinterpret_cast<float*>(ptr_of(info[3])),
               reinterpret_cast<float*>(ptr_of(info[4])), i64(info[5]), a);
    return info.Env().Undefined();
  });
}

Napi::Value SumOfSquares(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (dtype, x, count)
    return Napi::Number::New(info.Env(), cpu::sum_of_squares(i32(info[0]), ptr_of(info[1]), i64(info[2])));
  });
}

// Attention arguments from the object built by src/engine/cpu.ts (attentionConfig): numbers, booleans,
// Float32Arrays (alibiSlopes, rotaryInvFreq) and buffer addresses or null (keyScale, positions, segments).
cpu::AttentionArgs attention_args(const Napi::Object& o) {
  auto num = [&](const char* name) { return o.Get(name).As<Napi::Number>().DoubleValue(); };
  auto f32s = [&](const char* name) -> const float* {
    Napi::Value v = o.Get(name);
    if (!v.IsTypedArray()) return nullptr;
    Napi::TypedArray t = v.As<Napi::TypedArray>();
    if (t.TypedArrayType() != napi_float32_array) throw std::invalid_argument(std::string("attention: ") + name + " must be a Float32Array");
    return reinterpret_cast<const float*>(static_cast<const uint8_t*>(t.ArrayBuffer().Data()) + t.ByteOffset());
  };
  auto ints = [&](const char* name) { return reinterpret_cast<const int32_t*>(opt_ptr(o.Get(name))); };
  cpu::AttentionArgs a{};
  a.dtype = int(num("dtype"));
  a.lse_dtype = int(num("lseDtype"));
  a.key_scale_dtype = int(num("keyScaleDtype"));
  a.batch = int64_t(num("batch")); a.heads = int64_t(num("heads")); a.kv_heads = int64_t(num("kvHeads"));
  a.query_len = int64_t(num("queryLen")); a.key_len = int64_t(num("keyLen")); a.head_dim = int64_t(num("headDim"));
  a.scale = num("scale");
  a.causal = o.Get("causal").As<Napi::Boolean>().Value();
  a.query_offset = int64_t(num("queryOffset"));
  a.alibi_slopes = f32s("alibiSlopes");
  a.rotary_dim = int64_t(num("rotaryDim"));
  a.rotary_inv_freq = f32s("rotaryInvFreq");
  a.xpos_scale_base = num("xposScaleBase");
  a.key_scale = opt_ptr(o.Get("keyScale"));
  a.query_positions = ints("queryPositions");
  a.key_positions = ints("keyPositions");
  a.query_segments = ints("querySegments");
  a.key_segments = ints("keySegments");
  auto budget = [&](const char* name) { Napi::Value v = o.Get(name); return v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1.0; };
  a.key_cache_bytes = budget("keyCacheBytes");
  a.dq_accumulator_bytes = budget("dqAccumulatorBytes");
  return a;
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (q, k, v, out, lse, config)
    const cpu::AttentionArgs a = attention_args(info[5].As<Napi::Object>());
    cpu::attention_forward(a, ptr_of(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), ptr_of(info[4]));
    return info.Env().Undefined();
  });
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {  // (q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale|null, config)
    const cpu::AttentionArgs a = attention_args(info[10].As<Napi::Object>());
    cpu::attention_backward(a, ptr_of(info[0]), ptr_of(info[1]), ptr_of(info[2]), ptr_of(info[3]), ptr_of(info[4]),
                            ptr_of(info[5]), ptr_of(info[6]), ptr_of(info[7]), ptr_of(info[8]), opt_ptr(info[9]));
    return info.Env().Undefined();
  });
}

// ---- Reference attention form: masked softmax over explicit scores, rotary/xPos (attention_reference.cc) ----
// maskedSoftmax(dtype, scores, out, config) and rotary(dtype, x, out, config); configs as in src/engine/native-engine.ts.
Napi::Value MaskedSoftmax(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] {
    cpu::masked_softmax(masked_softmax_args(info[0], info[3]), ptr_of(info[1]), ptr_of(info[2]));
  });
}

Napi::Value Rotary(const Napi::CallbackInfo& info) {
  return guarded(info, "cpu engine", [&] { cpu::rotary(rotary_args(info[0], info[3]), ptr_of(info[1]), ptr_of(info[2])); });
}

void register_reference_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("maskedSoftmax", Napi::Function::New(env, MaskedSoftmax));
  exports.Set("rotary", Napi::Function::New(env, Rotary));
}
// ---- end of the reference attention form ----

Napi::Value Threads(const Napi::CallbackInfo& info) {
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    const double n = info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
    if (!(n >= 1 && n <= cpu::kMaxThreads && n == std::floor(n)))
      throw Napi::RangeError::New(info.Env(), "threads: must be an integer from 1 to " + std::to_string(cpu::kMaxThreads));
    cpu::set_thread_count(int(n));
  }
  return Napi::Number::New(info.Env(), cpu::thread_count());
}

// cpuInfo() -> { isa, cpuIsa, gemmF32, gemmF64, threads }: the instruction set in use and the GEMM micro-kernels.
Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("isa", cpu::isa_name(cpu::active_isa()));
  o.Set("cpuIsa", cpu::isa_name(cpu::cpu_isa()));
  o.Set("gemmF32", cpu::gemm_kernel_name(int(DType::F32)));
  o.Set("gemmF64", cpu::gemm_kernel_name(int(DType::F64)));
  o.Set("threads", cpu::thread_count());
  return o;
}

// limitIsa('generic' | 'avx2' | 'avx512'): caps the instruction set the kernels use (tests, benchmarks).
Napi::Value LimitIsa(const Napi::CallbackInfo& info) {
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  cpu::limit_isa(name == "generic" ? cpu::Isa::Generic : name == "avx2" ? cpu::Isa::Avx2 : cpu::Isa::Avx512);
  return Napi::String::New(info.Env(), cpu::isa_name(cpu::active_isa()));
}

// probeCpu() -> { clockGHz, fmaGflops512, fmaGflops256 }: measured on the calling thread (takes ~0.5 s).
Napi::Value ProbeCpu(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("clockGHz", cpu::measure_clock_ghz());
  o.Set("fmaGflops512", cpu::measure_fma_gflops(cpu::Isa::Avx512));
  o.Set("fmaGflops256", cpu::measure_fma_gflops(cpu::Isa::Avx2));
  return o;
}

}  // namespace

// addNorm, biasGelu, … (native/cpu/binding_fused.cc).
namespace andromeda::cpu { void register_fused(Napi::Env env, Napi::Object exports); }

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("resetPeakMemory", Napi::Function::New(env, ResetPeak));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("fill", Napi::Function::New(env, Fill));
  exports.Set("unary", Napi::Function::New(env, Unary));
  exports.Set("unaryGrad", Napi::Function::New(env, UnaryGrad));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("gemm", Napi::Function::New(env, Gemm));
  exports.Set("softmax", Napi::Function::New(env, Softmax));
  exports.Set("softmaxGrad", Napi::Function::New(env, SoftmaxGrad));
  exports.Set("norm", Napi::Function::New(env, Norm));
  exports.Set("normGrad", Napi::Function::New(env, NormGrad));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy));
  exports.Set("crossEntropyGrad", Napi::Function::New(env, CrossEntropyGrad));
  exports.Set("embedding", Napi::Function::New(env, Embedding));
  exports.Set("embeddingGrad", Napi::Function::New(env, EmbeddingGrad));
  exports.Set("dropout", Napi::Function::New(env, Dropout));
  exports.Set("randomFill", Napi::Function::New(env, RandomFill));
  exports.Set("adamw", Napi::Function::New(env, AdamW));
  exports.Set("sumOfSquares", Napi::Function::New(env, SumOfSquares));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo));
  exports.Set("limitIsa", Napi::Function::New(env, LimitIsa));
  exports.Set("probeCpu", Napi::Function::New(env, ProbeCpu));
  register_reference_attention(env, exports);
  cpu::register_fused(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(andromeda_cpu, Init)
