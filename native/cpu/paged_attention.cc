// Paged attention on the CPU (Engine.pagedAttention, src/engine/engine.ts): validation, the usable sequences and
// their tasks, the position tables, and the kernel of paged_attention_impl.h compiled per instruction set and
// picked at run time (as attention.cc does).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/dtype.h"
#include "kernels.h"
#include "paged_batch.h"
#include "parallel.h"
#include "simd.h"
#include "target_region.h"

namespace andromeda::cpu {
namespace paged_common {

/** Rows of one (sequence, KV head, query heads, query chunk) unit of work. Heads: the m-th head of the group. */
struct PagedTask {
  int64_t seq;  // index into PagedContext::seqs
  int64_t kv_head, head_begin, head_end, row_begin, row_end;
};

/** What every task of one call reads. Tables and the key scale are in the compute type (float or double). */
struct PagedContext {
  const PagedAttentionArgs* args;
  const PagedSequence* seqs;
  const char* q;
  const char* key_pool;
  const char* value_pool;
  char* out;
  const void* cos_table;   // [positions, rotary_dim / 2]: cos(p · invFreq[f])
  const void* sin_table;
  const void* xpos_table;  // null without xPos; row d + xpos_origin: ζ_f^(d / B)
  int64_t xpos_origin;
  const void* key_scale;   // [heads, head_dim] or null
  const float* slopes;     // [heads] or null
  int64_t padded_dim;      // head_dim rounded up to the widest vector
  int64_t key_tile;
};

}  // namespace paged_common

namespace paged_generic {
using namespace paged_common;
#define PAGED_VBYTES 16
#include "paged_attention_impl.h"
#undef PAGED_VBYTES
}  // namespace paged_generic

#if defined(__x86_64__)
ANDROMEDA_TARGET_BEGIN("avx2,fma")
namespace paged_avx2 {
using namespace paged_common;
#define PAGED_VBYTES 32
#include "paged_attention_impl.h"
#undef PAGED_VBYTES
}  // namespace paged_avx2
ANDROMEDA_TARGET_END

ANDROMEDA_TARGET_BEGIN("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
namespace paged_avx512 {
using namespace paged_common;
#define PAGED_VBYTES 64
#include "paged_attention_impl.h"
#undef PAGED_VBYTES
}  // namespace paged_avx512
ANDROMEDA_TARGET_END
#endif

namespace {
using paged_common::PagedContext;
using paged_common::PagedTask;

constexpr int64_t kQueryChunk = 64;  // query rows per task (fewer where xPos needs it)
constexpr int64_t kKeyTile = 64;     // keys per tile
constexpr int64_t kPaddedWidth = 16; // head dims are padded to a multiple of the widest vector (16 floats)

/**
 * Rotary cos/sin by position and xPos factors by distance for one rotary setting and compute type, grown on
 * demand and kept between calls: every layer of a model shares them, and a decode step would otherwise spend
 * more time on trigonometry than on its keys. Angles are formed as the dense attention forms them (a float32
 * product p · invFreq for float, double for double) and evaluated in double.
 */
template <typename C>
struct PositionTables {
  std::vector<float> inv_freq;
  double xpos_base = 0;
  std::vector<C> cos, sin, xpos;
  int64_t positions = 0;

  bool matches(const float* freq, int64_t half, double base) const {
    return int64_t(inv_freq.size()) == half && xpos_base == base &&
           std::equal(inv_freq.begin(), inv_freq.end(), freq);
  }

  /** Makes the tables cover positions [0, needed) and distances [−origin, needed). */
  void grow(int64_t needed, int64_t origin) {
    if (needed <= positions) return;
    const int64_t half = int64_t(inv_freq.size());
    const int64_t from = positions, to = std::max(needed, 2 * positions);
    cos.resize(size_t(to * half));
    sin.resize(size_t(to * half));
    parallel_for(to - from, std::max<int64_t>(1, 4096 / std::max<int64_t>(half, 1)), [&](int64_t b, int64_t e) {
      for (int64_t p = from + b; p < from + e; p++) {
        for (int64_t f = 0; f < half; f++) {
          const double angle = sizeof(C) == 4 ? double(float(p) * inv_freq[size_t(f)])
                                              : double(p) * double(inv_freq[size_t(f)]);
          cos[size_t(p * half + f)] = C(std::cos(angle));
          sin[size_t(p * half + f)] = C(std::sin(angle));
        }
      }
    });
    if (xpos_base > 0) {
      // ln ζ_f / B rounded to the compute type, and the exponent clamped where the dense attention clamps it.
      const double clamp = sizeof(C) == 4 ? 60 : 600;
      std::vector<C> log_zeta(static_cast<size_t>(half));
      const double r = double(2 * half);
      for (int64_t f = 0; f < half; f++)
        log_zeta[size_t(f)] = C(std::log((2.0 * double(f) + 0.4 * r) / (1.4 * r)) / xpos_base);
      xpos.resize(size_t((to + origin) * half));
      const int64_t first = positions == 0 ? -origin : from;
      parallel_for(to - first, std::max<int64_t>(1, 4096 / std::max<int64_t>(half, 1)), [&](int64_t b, int64_t e) {
        for (int64_t d = first + b; d < first + e; d++) {
          for (int64_t f = 0; f < half; f++) {
            const double x = std::max(-clamp, std::min(clamp, double(log_zeta[size_t(f)]) * double(d)));
            xpos[size_t((d + origin) * half + f)] = C(std::exp(x));
          }
        }
      });
    }
    positions = to;
  }
};

/** The tables of the most recent rotary settings (a few models or draft/target pairs at once). */
template <typename C>
class TableCache {
 public:
  /** The tables for these settings, covering `needed` positions; valid until the next call. */
  PositionTables<C>& get(const float* freq, int64_t half, double base, int64_t needed, int64_t origin) {
    auto it = std::find_if(entries_.begin(), entries_.end(), [&](const PositionTables<C>& t) {
      return t.matches(freq, half, base);
    });
    if (it == entries_.end()) {
      if (entries_.size() == kEntries) entries_.erase(entries_.begin());
      PositionTables<C> t;
      t.inv_freq.assign(freq, freq + half);
      t.xpos_base = base;
      entries_.push_back(std::move(t));
      it = entries_.end() - 1;
    } else {
      std::rotate(it, it + 1, entries_.end());  // most recently used last
      it = entries_.end() - 1;
    }
    it->grow(needed, origin);
    return *it;
  }

 private:
  static constexpr size_t kEntries = 4;
  std::vector<PositionTables<C>> entries_;
};

std::mutex table_mutex;

/** The most (head, query row) pairs one task holds. */
int64_t most_pairs_per_task(const std::vector<PagedTask>& tasks) {
  int64_t most = 0;
  for (const PagedTask& t : tasks) most = std::max(most, (t.head_end - t.head_begin) * (t.row_end - t.row_begin));
  return most;
}

void validate(const PagedAttentionArgs& a) {
  auto fail = [](const std::string& m) { throw std::invalid_argument("pagedAttention: " + m); };
  const DType dt = DType(a.dtype);
  if (dt != DType::F32 && dt != DType::F64 && dt != DType::BF16)
    fail("q, the pools and out must be float32, float64 or bfloat16");
  if (a.kv_heads <= 0 || a.heads % a.kv_heads != 0) fail("heads must be a positive multiple of kvHeads");
  if (a.rotary_dim < 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim)
    fail("rotaryDim must be even and at most headDim");
  if (a.rotary_dim > 0 && !a.rotary_inv_freq) fail("rotaryDim > 0 needs rotaryInvFreq");
  if (!(a.xpos_scale_base >= 0)) fail("xposScaleBase must be >= 0");
  if (a.block_size <= 0) fail("blockSize must be positive");
  const DType ks = DType(a.key_scale_dtype);
  if (a.key_scale && ks != DType::F32 && ks != DType::F64 && ks != DType::BF16)
    fail("keyScale must be float32, float64 or bfloat16");
}

template <typename C>
void run(const PagedAttentionArgs& a, const std::vector<PagedSequence>& seqs, const char* q, const char* key_pool,
         const char* value_pool, char* out) {
  const int64_t half = a.rotary_dim / 2;
  const bool xpos = a.xpos_scale_base > 0 && half > 0;
  // Query rows per chunk: with xPos, few enough that ζ^(chunk span / B) stays far inside the floating range.
  int64_t chunk = kQueryChunk;
  if (xpos) {
    const double worst = std::fabs(std::log(0.4 / 1.4) / a.xpos_scale_base);  // ζ is smallest at f = 0
    const double span = (sizeof(C) == 4 ? 30.0 : 300.0) / worst;
    chunk = std::max<int64_t>(1, std::min<int64_t>(kQueryChunk, int64_t(span) + 1));
  }
  int64_t positions = 0;
  for (const PagedSequence& s : seqs) positions = std::max(positions, s.context);

  static TableCache<C> cache;
  std::lock_guard<std::mutex> lock(table_mutex);
  static const float no_freq = 0;
  PositionTables<C>& tables = cache.get(half > 0 ? a.rotary_inv_freq : &no_freq, half, xpos ? a.xpos_scale_base : 0,
                                        half > 0 ? positions : 0, kQueryChunk);

  // The key scale in the compute type, from float32 or the pools' dtype.
  std::vector<C> key_scale;
  if (a.key_scale) {
    const int64_t n = a.heads * a.head_dim;
    key_scale.resize(size_t(n));
    for (int64_t i = 0; i < n; i++) {
      switch (DType(a.key_scale_dtype)) {
        case DType::F32: key_scale[size_t(i)] = C(reinterpret_cast<const float*>(a.key_scale)[i]); break;
        case DType::F64: key_scale[size_t(i)] = C(reinterpret_cast<const double*>(a.key_scale)[i]); break;
        case DType::BF16: key_scale[size_t(i)] = C(load(reinterpret_cast<const bf16*>(a.key_scale) + i)); break;
        default: break;  // refused by validate()
      }
    }
  }

  // Tasks: every (sequence, KV head, chunk), the group's query heads split further while there are fewer tasks
  // than threads to keep busy (each head's result is the same whichever task computes it).
  const int64_t group = a.heads / a.kv_heads;
  int64_t base_tasks = 0;
  for (const PagedSequence& s : seqs) base_tasks += (s.queries + chunk - 1) / chunk * a.kv_heads;
  const int64_t threads = thread_count();
  const int64_t parts =
      base_tasks == 0 ? 1 : std::min(group, std::max<int64_t>(1, (2 * threads + base_tasks - 1) / base_tasks));
  std::vector<PagedTask> tasks;
  for (size_t si = 0; si < seqs.size(); si++) {
    for (int64_t r0 = 0; r0 < seqs[si].queries; r0 += chunk) {
      for (int64_t g = 0; g < a.kv_heads; g++) {
        for (int64_t part = 0; part < parts; part++) {
          tasks.push_back({int64_t(si), g, group * part / parts, group * (part + 1) / parts, r0,
                           std::min(seqs[si].queries, r0 + chunk)});
        }
      }
    }
  }
  if (tasks.empty()) return;

  const int64_t padded = (a.head_dim + kPaddedWidth - 1) / kPaddedWidth * kPaddedWidth;
  const int64_t task_pairs = most_pairs_per_task(tasks);
  // Per worker: q̂ and accumulators (task_pairs (head, row) pairs × padded), key and value tiles, row statistics,
  // tile scores, and the tile's key row pointers (layout: paged_attention_impl.h).
  const size_t scratch_bytes =
      (sizeof(C) * size_t(2 * task_pairs * padded + 2 * kKeyTile * padded + 2 * task_pairs + kKeyTile) +
       sizeof(void*) * size_t(kKeyTile) + 63) / 64 * 64;
  // Every task initialises what it reads of its worker's scratch: no zeroing here.
  const std::unique_ptr<char[]> scratch(new char[scratch_bytes * size_t(threads)]);

  const PagedContext cx{&a,
                        seqs.data(),
                        q,
                        key_pool,
                        value_pool,
                        out,
                        tables.cos.data(),
                        tables.sin.data(),
                        xpos ? tables.xpos.data() : nullptr,
                        kQueryChunk,
                        a.key_scale ? key_scale.data() : nullptr,
                        a.alibi_slopes,
                        padded,
                        kKeyTile};
  void (*task_fn)(const PagedContext&, const PagedTask&, char*) = paged_generic::run_task;
#if defined(__x86_64__)
  switch (active_isa()) {
    case Isa::Avx512: task_fn = paged_avx512::run_task; break;
    case Isa::Avx2: task_fn = paged_avx2::run_task; break;
    default: break;
  }
#endif
  parallel_tasks(int64_t(tasks.size()), [&](int64_t t, int worker) {
    task_fn(cx, tasks[size_t(t)], scratch.get() + scratch_bytes * size_t(worker));
  });
}

}  // namespace

void paged_attention(const PagedAttentionArgs& args, const char* q, const char* key_pool, const char* value_pool,
                     char* out) {
  validate(args);
  if (args.heads == 0 || args.head_dim == 0) return;
  const std::vector<PagedSequence> seqs = usable_sequences(args);
  if (DType(args.dtype) == DType::F64) run<double>(args, seqs, q, key_pool, value_pool, out);
  else run<float>(args, seqs, q, key_pool, value_pool, out);
}

}  // namespace andromeda::cpu
