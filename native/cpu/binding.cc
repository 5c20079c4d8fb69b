// N-API surface of the CPU engine: buffer management, the CPU's own functions, and the kernels (generated
// glue, native/cpu/binding_kernels.cc). Buffers are 64-byte-aligned heap blocks that JavaScript names by a
// handle of the engine's HandleTable, never by address.
#include <napi.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "../common/dtype.h"
#include "../common/napi_args.h"
#include "gemm.h"
#include "parallel.h"
#include "simd.h"

using namespace andromeda;
using andromeda::napi_args::guarded;

namespace andromeda::cpu {

abi::HandleTable& handles() {
  static abi::HandleTable table("cpu engine");
  return table;
}

// The kernels of native/abi/kernels.mjs (native/cpu/binding_kernels.cc, generated).
void register_kernels(Napi::Env env, Napi::Object exports);

}  // namespace andromeda::cpu

namespace {

constexpr char kEngine[] = "cpu engine";
// Larger requests are refused outright rather than handed to the allocator (2^48 bytes = 256 TiB).
constexpr double kMaxAllocation = 281474976710656.0;

std::mutex g_mutex;
size_t g_allocated = 0, g_peak = 0;

// alloc(bytes) -> handle
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&]() -> Napi::Value {
    abi::expect_arguments(info, "alloc", 1);
    const uint64_t bytes = uint64_t(abi::count(info[0], "alloc", "bytes", kMaxAllocation));
    const size_t rounded = ((bytes ? bytes : 1) + 63) / 64 * 64;
    char* p = static_cast<char*>(std::aligned_alloc(64, rounded));
    if (!p) {
      throw std::range_error("out of memory allocating " + std::to_string(bytes) + " bytes (" + std::to_string(g_allocated) +
                             " bytes already held by tensors)");
    }
    double handle;
    try {
      handle = cpu::handles().insert(p, bytes);
    } catch (...) {
      std::free(p);
      throw;
    }
    std::lock_guard<std::mutex> lock(g_mutex);
    g_allocated += rounded;
    if (g_allocated > g_peak) g_peak = g_allocated;
    return Napi::Number::New(info.Env(), handle);
  });
}

// free(handle)
Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "free", 1);
    const abi::Allocation a = cpu::handles().remove("free", abi::number(info[0], "free", "handle"));
    std::free(a.base);
    std::lock_guard<std::mutex> lock(g_mutex);
    g_allocated -= ((a.bytes ? a.bytes : 1) + 63) / 64 * 64;
  });
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

/** The bytes [byteOffset, byteOffset + bytes) of the buffer `handle` names, checked against its size. */
char* byte_range(const char* kernel, const Napi::Value& handle, const Napi::Value& byte_offset, uint64_t bytes) {
  return abi::byte_range(cpu::handles(), kernel, handle, byte_offset, bytes);
}

// upload(handle, byteOffset, typedArray)
Napi::Value Upload(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "upload", 3);
    if (!info[2].IsTypedArray() && !info[2].IsDataView()) abi::type_error("upload", "data", "a typed array or DataView", info[2]);
    Napi::ArrayBuffer buffer = info[2].IsTypedArray() ? info[2].As<Napi::TypedArray>().ArrayBuffer() : info[2].As<Napi::DataView>().ArrayBuffer();
    const size_t start = info[2].IsTypedArray() ? info[2].As<Napi::TypedArray>().ByteOffset() : info[2].As<Napi::DataView>().ByteOffset();
    const size_t length = info[2].IsTypedArray() ? info[2].As<Napi::TypedArray>().ByteLength() : info[2].As<Napi::DataView>().ByteLength();
    char* dst = byte_range("upload", info[0], info[1], length);
    if (length) std::memcpy(dst, static_cast<const uint8_t*>(buffer.Data()) + start, length);
  });
}

// download(handle, byteOffset, bytes) -> ArrayBuffer
Napi::Value Download(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&]() -> Napi::Value {
    abi::expect_arguments(info, "download", 3);
    const uint64_t bytes = uint64_t(abi::count(info[2], "download", "bytes"));
    const char* src = byte_range("download", info[0], info[1], bytes);
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), bytes);
    if (bytes) std::memcpy(out.Data(), src, bytes);
    return out;
  });
}

// threads([count]) -> the worker threads the kernels use, after setting them when a count is given.
Napi::Value Threads(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&]() -> Napi::Value {
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      const char* expected = "an integer from 1 to the thread limit";
      cpu::set_thread_count(int(abi::integer(info[0], "threads", "count", 1, cpu::kMaxThreads, expected)));
    }
    return Napi::Number::New(info.Env(), cpu::thread_count());
  });
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

// limitIsa(name): caps the instruction set the kernels use (tests, benchmarks); `name` is one of this
// architecture's: 'generic', 'avx2' or 'avx512' on x86-64, 'generic' or 'neon' on aarch64.
Napi::Value LimitIsa(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&]() -> Napi::Value {
    if (info.Length() != 1 || !info[0].IsString()) abi::type_error("limitIsa", "isa", cpu::isa_choices(), info[0]);
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    cpu::Isa isa;
    if (!cpu::parse_isa(name, &isa))
      throw abi::RangeError(std::string("limitIsa: isa must be ") + cpu::isa_choices() + " on this CPU architecture, got '" +
                            name + "'");
    cpu::limit_isa(isa);
    return Napi::String::New(info.Env(), cpu::isa_name(cpu::active_isa()));
  });
}

// probeCpu() -> { clockGHz, fmaGflops512, fmaGflops256, fmaGflopsNeon }: measured on the calling thread (~0.5 s);
// 0 for what this CPU does not have (and for the clock on aarch64, which has no fixed multiply latency to count).
Napi::Value ProbeCpu(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("clockGHz", cpu::measure_clock_ghz());
#if defined(__x86_64__)
  o.Set("fmaGflops512", cpu::measure_fma_gflops(cpu::Isa::Avx512));
  o.Set("fmaGflops256", cpu::measure_fma_gflops(cpu::Isa::Avx2));
#else
  o.Set("fmaGflops512", 0.0);
  o.Set("fmaGflops256", 0.0);
#endif
#if defined(__aarch64__)
  o.Set("fmaGflopsNeon", cpu::measure_fma_gflops(cpu::Isa::Neon));
#else
  o.Set("fmaGflopsNeon", 0.0);
#endif
  return o;
}

}  // namespace

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, Alloc));
  exports.Set("free", Napi::Function::New(env, Free));
  exports.Set("memoryStats", Napi::Function::New(env, MemoryStats));
  exports.Set("resetPeakMemory", Napi::Function::New(env, ResetPeak));
  exports.Set("upload", Napi::Function::New(env, Upload));
  exports.Set("download", Napi::Function::New(env, Download));
  exports.Set("threads", Napi::Function::New(env, Threads));
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo));
  exports.Set("limitIsa", Napi::Function::New(env, LimitIsa));
  exports.Set("probeCpu", Napi::Function::New(env, ProbeCpu));
  cpu::register_kernels(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(andromeda_cpu, Init)
