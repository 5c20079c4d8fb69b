// N-API surface of the CUDA engine: device setup, memory, profiling marks, and the kernels (generated glue,
// native/cuda/binding_kernels.cc; attention's mode switch in attention/binding_attention.cc). Device buffers
// are named from JavaScript by handles of the engine's HandleTable, never by address; every C++ exception
// becomes a JavaScript error, nothing aborts the process.
#include <napi.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "../common/napi_args.h"
#include "engine.h"

namespace andromeda::cuda {

abi::HandleTable& handles() {
  static abi::HandleTable table("cuda engine");
  return table;
}

// The kernels of native/abi/kernels.mjs (binding_kernels.cc, which includes the generated kernel_bindings.inc) and the attention switch.
void register_kernels(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);

}  // namespace andromeda::cuda

namespace cu = andromeda::cuda;
namespace abi = andromeda::abi;
using andromeda::napi_args::guarded;

namespace {

constexpr char kEngine[] = "cuda engine";
// Larger requests are refused outright rather than handed to the allocator (2^48 bytes = 256 TiB).
constexpr double kMaxAllocation = 281474976710656.0;

Napi::Value DeviceCount(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] { return Napi::Number::New(info.Env(), cu::device_count()); });
}

Napi::Value Init(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "init", 1);
    cu::init(int(abi::count(info[0], "init", "device", 2147483647)));
    return Napi::String::New(info.Env(), cu::device_description());
  });
}

Napi::Value GemmLibrary(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] { return Napi::String::New(info.Env(), cu::gemm_library()); });
}

// alloc(bytes) -> handle
Napi::Value Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "alloc", 1);
    const uint64_t bytes = uint64_t(abi::count(info[0], "alloc", "bytes", kMaxAllocation));
    char* p = cu::alloc(size_t(bytes));
    try {
      return Napi::Number::New(info.Env(), cu::handles().insert(p, bytes));
    } catch (...) {
      cu::free(p);
      throw;
    }
  });
}

// free(handle)
Napi::Value Free(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "free", 1);
    cu::free(cu::handles().remove("free", abi::number(info[0], "free", "handle")).base);
  });
}

Napi::Value Synchronize(const Napi::CallbackInfo& info) { return guarded(info, kEngine, [&] { cu::synchronize(); }); }
Napi::Value ResetPeak(const Napi::CallbackInfo& info) { return guarded(info, kEngine, [&] { cu::reset_peak(); }); }
Napi::Value EmptyCache(const Napi::CallbackInfo& info) { return guarded(info, kEngine, [&] { cu::empty_cache(); }); }

Napi::Value ProfilerRange(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "profilerRange", 1);
    if (!info[0].IsBoolean()) throw std::invalid_argument("profilerRange: the argument must be a boolean");
    cu::profiler_range(info[0].As<Napi::Boolean>().Value());
  });
}

Napi::Value TimingMark(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] { return Napi::Number::New(info.Env(), cu::timing_mark()); });
}

Napi::Value TimingRead(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    const std::vector<double> ms = cu::timing_read();
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), ms.size());
    for (size_t i = 0; i < ms.size(); i++) out[i] = ms[i];
    return out;
  });
}

// setMemoryLimit(bytes), 0 removes the cap
Napi::Value SetMemoryLimit(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "setMemoryLimit", 1);
    cu::set_memory_limit(size_t(abi::count(info[0], "setMemoryLimit", "bytes")));
  });
}

Napi::Value MemoryStats(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    const cu::MemoryStats s = cu::memory_stats();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("allocated", double(s.allocated));
    o.Set("peakAllocated", double(s.peak));
    o.Set("reserved", double(s.reserved));
    o.Set("liveBlocks", double(s.live_blocks));
    o.Set("cachedBlocks", double(s.cached_blocks));
    o.Set("deviceFree", double(s.device_free));
    o.Set("deviceTotal", double(s.device_total));
    o.Set("graphPoolIdle", double(s.graph_pool_idle));
    return o;
  });
}

/** The bytes [byteOffset, byteOffset + bytes) of the buffer `handle` names, checked against its size. */
char* byte_range(const char* kernel, const Napi::Value& handle, const Napi::Value& byte_offset, uint64_t bytes) {
  return abi::byte_range(cu::handles(), kernel, handle, byte_offset, bytes);
}

// upload(handle, byteOffset, typedArray)
Napi::Value Upload(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "upload", 3);
    if (!info[2].IsTypedArray()) abi::type_error("upload", "data", "a typed array", info[2]);
    Napi::TypedArray arr = info[2].As<Napi::TypedArray>();
    char* dst = byte_range("upload", info[0], info[1], arr.ByteLength());
    const uint8_t* src = static_cast<const uint8_t*>(arr.ArrayBuffer().Data()) + arr.ByteOffset();
    if (arr.ByteLength()) cu::upload(dst, src, arr.ByteLength());
  });
}

// download(handle, byteOffset, bytes) -> ArrayBuffer
Napi::Value Download(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "download", 3);
    const uint64_t bytes = uint64_t(abi::count(info[2], "download", "bytes"));
    const char* src = byte_range("download", info[0], info[1], bytes);
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), size_t(bytes));
    if (bytes) cu::download(out.Data(), src, size_t(bytes));
    return out;
  });
}

// downloadStart(handle, byteOffset, bytes) -> ticket; downloadWait(ticket) -> ArrayBuffer (pending_reads.cc).
Napi::Value DownloadStart(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "downloadStart", 3);
    const uint64_t bytes = uint64_t(abi::count(info[2], "downloadStart", "bytes", double(cu::kMaxPendingReadBytes)));
    const char* src = byte_range("downloadStart", info[0], info[1], bytes);
    return Napi::Number::New(info.Env(), double(cu::download_start(src, size_t(bytes))));
  });
}
Napi::Value DownloadWait(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] {
    abi::expect_arguments(info, "downloadWait", 1);
    const uint64_t ticket = uint64_t(abi::count(info[0], "downloadWait", "ticket"));
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), cu::download_bytes(ticket));
    cu::download_finish(ticket, out.Data());
    return out;
  });
}

// CUDA graphs (graph.cc): graphBegin(), graphEnd() -> id, graphAbort(), graphReplay(id), graphDispose(id).
uint32_t graph_id(const Napi::CallbackInfo& info, const char* what) {
  abi::expect_arguments(info, what, 1);
  return uint32_t(abi::count(info[0], what, "graph", 4294967295.0));
}
Napi::Value GraphBegin(const Napi::CallbackInfo& info) { return guarded(info, kEngine, [&] { cu::graph_begin(); }); }
Napi::Value GraphEnd(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] { return Napi::Number::New(info.Env(), double(cu::graph_end())); });
}
Napi::Value GraphAbort(const Napi::CallbackInfo& info) { return guarded(info, kEngine, [&] { cu::graph_abort(); }); }
Napi::Value GraphReplay(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] { cu::graph_replay(graph_id(info, "graphReplay")); });
}
Napi::Value GraphDispose(const Napi::CallbackInfo& info) {
  return guarded(info, kEngine, [&] { cu::graph_dispose(graph_id(info, "graphDispose")); });
}

Napi::Object Register(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> functions[] = {
      {"deviceCount", DeviceCount}, {"init", Init}, {"gemmLibrary", GemmLibrary},
      {"alloc", Alloc}, {"free", Free}, {"synchronize", Synchronize}, {"memoryStats", MemoryStats},
      {"resetPeakMemory", ResetPeak}, {"emptyCache", EmptyCache}, {"setMemoryLimit", SetMemoryLimit},
      {"timingMark", TimingMark}, {"timingRead", TimingRead}, {"profilerRange", ProfilerRange}, {"upload", Upload}, {"download", Download},
      {"downloadStart", DownloadStart}, {"downloadWait", DownloadWait},
      {"graphBegin", GraphBegin}, {"graphEnd", GraphEnd}, {"graphAbort", GraphAbort},
      {"graphReplay", GraphReplay}, {"graphDispose", GraphDispose},
  };
  for (const auto& [name, fn] : functions) exports.Set(name, Napi::Function::New(env, fn, name));
  cu::register_kernels(env, exports);
  cu::register_attention(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(andromeda_cuda, Register)
