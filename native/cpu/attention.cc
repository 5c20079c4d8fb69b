// Fused attention for the CPU engine: validation, instruction-set dispatch, and the kernels of
// attention_impl.h compiled for the baseline target (SSE2 on x86-64, NEON on aarch64) and on x86-64 also
// for AVX2+FMA and AVX-512, picked at run time.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"
#include "simd.h"
#include "target_region.h"

namespace andromeda::cpu {
namespace attn_common {

inline size_t round64(size_t bytes) { return ((bytes ? bytes : 1) + 63) / 64 * 64; }

inline void* aligned_or_throw(size_t bytes) {
  void* p = std::aligned_alloc(64, bytes);
  if (!p) throw std::runtime_error("attention: out of memory for " + std::to_string(bytes) + " bytes of scratch");
  return p;
}

// Workspace of the calling thread, kept between calls: the tables and gradient staging buffers of
// a call are carved from one block that stays mapped, so repeated calls (training steps) do not pay
// page faults and zeroing for fresh memory. Grows to the largest call's need (released when that
// exceeds kKeep). Used only between ArenaScope construction and destruction on that thread.
class Arena {
 public:
  static Arena& local() {
    thread_local Arena arena;
    return arena;
  }
  ~Arena() { std::free(base_); }
  void begin() {
    if (depth_++ == 0) used_ = 0;
  }
  void end() {
    if (--depth_ != 0) return;
    const size_t total = used_ + extra_bytes_;
    for (void* p : extras_) std::free(p);
    extras_.clear();
    extra_bytes_ = 0;
    if (total > cap_ && total <= kKeep) {
      std::free(base_);
      base_ = static_cast<char*>(std::aligned_alloc(64, total));
      cap_ = base_ ? total : 0;
    } else if (cap_ > kKeep) {
      std::free(base_);
      base_ = nullptr;
      cap_ = 0;
    }
  }
  // nullptr outside a scope.
  void* take(size_t bytes) {
    if (depth_ == 0) return nullptr;
    bytes = round64(bytes);
    if (used_ + bytes <= cap_) {
      void* p = base_ + used_;
      used_ += bytes;
      return p;
    }
    void* p = aligned_or_throw(bytes);
    extras_.push_back(p);
    extra_bytes_ += bytes;
    return p;
  }

 private:
  static constexpr size_t kKeep = size_t(512) << 20;
  char* base_ = nullptr;
  size_t cap_ = 0, used_ = 0, extra_bytes_ = 0;
  int depth_ = 0;
  std::vector<void*> extras_;
};

class ArenaScope {
 public:
  ArenaScope() { Arena::local().begin(); }
  ~ArenaScope() { Arena::local().end(); }
  ArenaScope(const ArenaScope&) = delete;
  ArenaScope& operator=(const ArenaScope&) = delete;
};

// A 64-byte-aligned scratch block, zeroed when asked. Outside parallel regions it comes from the
// calling thread's Arena (when a scope is open), else from the heap. Not a template, so that the
// per-instruction-set code below instantiates nothing shared.
class Buf {
 public:
  Buf() = default;
  explicit Buf(size_t bytes, bool zero = true) { reset(bytes, zero); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  ~Buf() {
    if (owned_) std::free(p_);
  }
  void reset(size_t bytes, bool zero = true) {
    if (owned_) std::free(p_);
    const size_t rounded = round64(bytes);
    p_ = in_parallel() ? nullptr : Arena::local().take(rounded);
    owned_ = p_ == nullptr;
    if (owned_) p_ = aligned_or_throw(rounded);
    if (zero) std::memset(p_, 0, rounded);
  }
  void* get() const { return p_; }

 private:
  void* p_ = nullptr;
  bool owned_ = false;
};

// Flush-to-zero / denormals-are-zero while a kernel thread runs: xPos factors and far-away softmax
// weights reach the subnormal range, where x86 arithmetic is ~100× slower. Restored on exit. (aarch64 cores
// handle subnormals in hardware, without x86's microcode assists, so there it does nothing.)
class FtzScope {
 public:
#if defined(__x86_64__) || defined(__i386__)
  FtzScope() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040u); }
  ~FtzScope() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#else
  ~FtzScope() {}  // user-provided, so that the scopes the kernels declare are not reported unused
#endif
};

[[noreturn]] inline void throw_unsupported_dtype() {
  throw std::invalid_argument("attention: q/k/v must be float32, float64 or bfloat16");
}

}  // namespace attn_common

namespace attn_generic {
using namespace attn_common;
#define ATTN_VBYTES 16
#define ATTN_RM 4
#include "attention_impl.h"
#undef ATTN_VBYTES
#undef ATTN_RM
}  // namespace attn_generic

#if defined(__x86_64__)
ANDROMEDA_TARGET_BEGIN("avx2,fma")
namespace attn_avx2 {
using namespace attn_common;
#define ATTN_VBYTES 32
#define ATTN_RM 4
#include "attention_impl.h"
#undef ATTN_VBYTES
#undef ATTN_RM
}  // namespace attn_avx2
ANDROMEDA_TARGET_END

ANDROMEDA_TARGET_BEGIN("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
namespace attn_avx512 {
using namespace attn_common;
#define ATTN_VBYTES 64
#define ATTN_RM 8
#include "attention_impl.h"
#undef ATTN_VBYTES
#undef ATTN_RM
}  // namespace attn_avx512
ANDROMEDA_TARGET_END
#endif

namespace {
using attn_common::ArenaScope;

enum class AttnIsa { Generic, Avx2, Avx512 };

// The instruction set the other kernels use (simd.h: the CPU's best, capped by limit_isa). On aarch64 the
// generic build is the NEON one: its 16-byte vectors are NEON registers of the baseline target.
AttnIsa pick_isa() {
#if defined(__x86_64__)
  switch (active_isa()) {
    case Isa::Avx512: return AttnIsa::Avx512;
    case Isa::Avx2: return AttnIsa::Avx2;
    default: break;
  }
#endif
  return AttnIsa::Generic;
}

void validate(const AttentionArgs& a) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("attention: " + m); };
  if (a.batch < 0 || a.heads <= 0 || a.kv_heads <= 0 || a.query_len < 0 || a.key_len < 0 || a.head_dim <= 0)
    fail("bad sizes");
  if (a.heads % a.kv_heads != 0)
    fail("heads (" + std::to_string(a.heads) + ") must be a multiple of kvHeads (" + std::to_string(a.kv_heads) + ")");
  if (a.rotary_dim < 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim)
    fail("rotaryDim (" + std::to_string(a.rotary_dim) + ") must be even and at most headDim (" +
         std::to_string(a.head_dim) + ")");
  if (a.rotary_dim > 0 && !a.rotary_inv_freq) fail("rotaryDim > 0 needs rotaryInvFreq");
  if (a.xpos_scale_base < 0 || !std::isfinite(a.xpos_scale_base)) fail("xposScaleBase must be finite and >= 0");
  if ((a.query_segments == nullptr) != (a.key_segments == nullptr))
    fail("querySegments and keySegments must be given together");
  if (a.lse_dtype != int(DType::F32) && a.lse_dtype != int(DType::F64)) fail("lse must be float32 or float64");
  if (!(a.key_cache_bytes < 0 || std::isfinite(a.key_cache_bytes)) ||
      !(a.dq_accumulator_bytes < 0 || std::isfinite(a.dq_accumulator_bytes)))
    fail("keyCacheBytes and dqAccumulatorBytes must be finite");
  if (a.key_scale && a.key_scale_dtype != int(DType::F32) && a.key_scale_dtype != int(DType::F64) &&
      a.key_scale_dtype != int(DType::BF16))
    fail("keyScale must be float32, float64 or bfloat16");
}

}  // namespace

void attention_forward(const AttentionArgs& args, const char* q, const char* k, const char* v, char* out, char* lse) {
  validate(args);
  if (args.batch == 0 || args.query_len == 0) return;
  ArenaScope scope;
  switch (pick_isa()) {
#if defined(__x86_64__)
    case AttnIsa::Avx512: attn_avx512::forward(args, q, k, v, out, lse); break;
    case AttnIsa::Avx2: attn_avx2::forward(args, q, k, v, out, lse); break;
#endif
    default: attn_generic::forward(args, q, k, v, out, lse); break;
  }
}

void attention_backward(const AttentionArgs& args, const char* q, const char* k, const char* v, const char* out,
                        const char* lse, const char* grad_out, char* grad_q, char* grad_k, char* grad_v,
                        char* grad_key_scale) {
  validate(args);
  ArenaScope scope;
  switch (pick_isa()) {
#if defined(__x86_64__)
    case AttnIsa::Avx512:
      attn_avx512::backward(args, q, k, v, out, lse, grad_out, grad_q, grad_k, grad_v, grad_key_scale);
      break;
    case AttnIsa::Avx2:
      attn_avx2::backward(args, q, k, v, out, lse, grad_out, grad_q, grad_k, grad_v, grad_key_scale);
      break;
#endif
    default:
      attn_generic::backward(args, q, k, v, out, lse, grad_out, grad_q, grad_k, grad_v, grad_key_scale);
      break;
  }
}

}  // namespace andromeda::cpu
