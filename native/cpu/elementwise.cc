// Elementwise kernels: strided copy with casting, fill, unary maps, broadcasting binary maps.
// Shapes are first collapsed (adjacent axes that are contiguous in every operand merge, size-1 axes
// go), then walked as runs along the last axis; float32 runs that are contiguous or broadcast a
// single value go to the vector kernels (simd_kernels.h), and copies whose source is transposed
// relative to the destination go through cache-sized tiles.
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_kernels.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;

int64_t total(const int64_t* shape, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

constexpr int kMaxRank = 24;

// A shape with the strides of two operands, after collapsing.
struct Walk {
  int rank = 0;
  int64_t shape[kMaxRank];
  int64_t sa[kMaxRank], sb[kMaxRank];
};

// Drops size-1 axes and merges axis d into d+1 where both operands step through them as one axis.
Walk collapse(const int64_t* shape, int rank, const int64_t* sa, const int64_t* sb, const char* op) {
  Walk w;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 1) continue;
    if (w.rank > 0) {
      const int l = w.rank - 1;
      if (w.sa[l] == sa[d] * shape[d] && w.sb[l] == sb[d] * shape[d]) {
        w.shape[l] *= shape[d];
        w.sa[l] = sa[d];
        w.sb[l] = sb[d];
        continue;
      }
    }
    if (w.rank == kMaxRank) throw std::invalid_argument(std::string(op) + ": more than 24 non-mergeable axes");
    w.shape[w.rank] = shape[d];
    w.sa[w.rank] = sa[d];
    w.sb[w.rank] = sb[d];
    w.rank++;
  }
  if (w.rank == 0) {  // a single element
    w.rank = 1;
    w.shape[0] = 1;
    w.sa[0] = w.sb[0] = 0;
  }
  return w;
}

// Calls fn(linear, offset_a, offset_b, run) for the runs along the last axis covering elements
// [begin, end) in row-major order.
template <typename Fn>
void for_each_run(const Walk& w, int64_t begin, int64_t end, Fn fn) {
  int64_t idx[kMaxRank];
  int64_t rem = begin, oa = 0, ob = 0;
  for (int d = w.rank - 1; d >= 0; d--) {
    idx[d] = rem % w.shape[d];
    rem /= w.shape[d];
    oa += idx[d] * w.sa[d];
    ob += idx[d] * w.sb[d];
  }
  const int last = w.rank - 1;
  const int64_t la = w.sa[last], lb = w.sb[last];
  for (int64_t i = begin; i < end;) {
    const int64_t run = std::min(end - i, w.shape[last] - idx[last]);
    fn(i, oa, ob, run);
    i += run;
    oa += run * la;
    ob += run * lb;
    idx[last] += run;
    for (int d = last; d > 0 && idx[d] == w.shape[d]; d--) {
      oa -= idx[d] * w.sa[d];
      ob -= idx[d] * w.sb[d];
      idx[d] = 0;
      idx[d - 1]++;
      oa += w.sa[d - 1];
      ob += w.sb[d - 1];
    }
  }
}

// dst ← src where the source's unit-stride axis `p` is not the last axis: 64 × 64 tiles of the
// (p, last) plane, float32 through 8 × 8 register transposes (whole cache lines in and out).
template <typename S, typename D>
void copy_transposed(const S* src, D* dst, const Walk& w, int p) {
  constexpr int64_t kTile = 64;
  const int last = w.rank - 1;
  const int64_t np = w.shape[p], nl = w.shape[last];
  const int64_t sp = w.sa[p], sl = w.sa[last], dp = w.sb[p], dl = w.sb[last];
  int64_t outer = 1;
  for (int d = 0; d < last; d++)
    if (d != p) outer *= w.shape[d];
  const int64_t pt = (np + kTile - 1) / kTile, lt = (nl + kTile - 1) / kTile;
  const F32Ops* vec = std::is_same<S, float>::value && std::is_same<D, float>::value && sp == 1 && dl == 1 ? &f32_ops() : nullptr;
  parallel_for(outer * pt * lt, std::max<int64_t>(1, (1 << 15) / (kTile * kTile)), [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; task++) {
      int64_t rest = task / (pt * lt);
      const int64_t tile = task % (pt * lt), p0 = tile / lt * kTile, l0 = tile % lt * kTile;
      int64_t os = 0, od = 0;
      for (int d = last - 1; d >= 0; d--) {
        if (d == p) continue;
        const int64_t i = rest % w.shape[d];
        rest /= w.shape[d];
        os += i * w.sa[d];
        od += i * w.sb[d];
      }
      const int64_t p1 = std::min(np, p0 + kTile), l1 = std::min(nl, l0 + kTile);
      if (vec) {  // dst[q·dp + l] = src[l·sl + q]
        vec->transpose(reinterpret_cast<const float*>(src + os + l0 * sl + p0), sl, reinterpret_cast<float*>(dst + od + p0 * dp + l0),
                       dp, l1 - l0, p1 - p0);
        continue;
      }
      for (int64_t l = l0; l < l1; l++) {
        const S* s = src + os + l * sl;
        D* t = dst + od + l * dl;
        for (int64_t q = p0; q < p1; q++) store(t + q * dp, load(s + q * sp));
      }
    }
  });
}

template <typename S, typename D>
void copy_typed(const S* src, const int64_t* ss, D* dst, const int64_t* ds, const int64_t* shape, int rank) {
  const int64_t n = total(shape, rank);
  if (n == 0) return;
  const Walk w = collapse(shape, rank, ss, ds, "copy");
  const int last = w.rank - 1;
  if (w.sa[last] != 1 && w.sb[last] == 1 && w.shape[last] >= 8) {
    for (int p = 0; p < last; p++)
      if (w.sa[p] == 1 && w.shape[p] >= 8) {
        copy_transposed(src, dst, w, p);
        return;
      }
  }
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for_each_run(w, begin, end, [&](int64_t, int64_t os, int64_t od, int64_t run) {
      const S* s = src + os;
      D* d = dst + od;
      const int64_t ls = w.sa[last], ld = w.sb[last];
      if (std::is_same<S, D>::value && ls == 1 && ld == 1) {
        std::memcpy(static_cast<void*>(d), static_cast<const void*>(s), sizeof(S) * size_t(run));
      } else if (ls == 1 && ld == 1) {
        for (int64_t j = 0; j < run; j++) store(d + j, load(s + j));
      } else {
        for (int64_t j = 0; j < run; j++) store(d + j * ld, load(s + j * ls));
      }
    });
  });
}

template <typename C>
inline C gelu(C x) { return C(0.5) * x * (C(1) + std::erf(x * C(0.70710678118654752440))); }
template <typename C>
inline C sigmoid(C x) { return C(1) / (C(1) + std::exp(-x)); }

template <typename C>
inline C apply_unary(int op, C x, C s) {
  switch (op) {
    case 0: return -x;
    case 1: return std::exp(x);
    case 2: return std::log(x);
    case 3: return std::sqrt(x);
    case 4: return C(1) / std::sqrt(x);
    case 5: return gelu(x);
    case 6: return sigmoid(x);
    case 7: return x * sigmoid(x);
    case 8: return std::tanh(x);
    case 9: return std::fabs(x);
    case 10: return x > C(0) ? x : C(0);
    case 11: return x * x;
    case 12: return C(1) / x;
    case 13: return x * s;
    case 14: return x + s;
    case 15: return std::pow(x, s);
    case 16: return std::sin(x);
    case 17: return std::cos(x);
    default: throw std::invalid_argument("unary: unknown op code");
  }
}

template <typename C>
inline C apply_unary_grad(int op, C x) {
  switch (op) {
    case 0: {  // gelu: Φ(x) + x φ(x)
      const C cdf = C(0.5) * (C(1) + std::erf(x * C(0.70710678118654752440)));
      const C pdf = std::exp(C(-0.5) * x * x) * C(0.39894228040143267794);
      return cdf + x * pdf;
    }
    case 1: { const C s = sigmoid(x); return s * (C(1) - s); }
    case 2: { const C s = sigmoid(x); return s * (C(1) + x * (C(1) - s)); }
    case 3: { const C t = std::tanh(x); return C(1) - t * t; }
    case 4: return x > C(0) ? C(1) : C(0);
    case 5: return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
    default: throw std::invalid_argument("unary_grad: unknown op code");
  }
}

template <typename C>
inline C apply_binary(int op, C a, C b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return a > b || std::isnan(a) ? a : b;
    case 5: return a < b || std::isnan(a) ? a : b;
    case 6: return std::pow(a, b);
    case 7: return a > b ? C(1) : C(0);
    case 8: return a < b ? C(1) : C(0);
    case 9: return a == b ? C(1) : C(0);
    default: throw std::invalid_argument("binary: unknown op code");
  }
}

template <typename T>
void binary_typed(int op, const T* a, const int64_t* sa, const T* b, const int64_t* sb, T* out, const int64_t* shape, int rank) {
  using C = typename Compute<T>::type;
  const int64_t n = total(shape, rank);
  if (n == 0) return;
  const Walk w = collapse(shape, rank, sa, sb, "binary");
  const int last = w.rank - 1;
  const int64_t la = w.sa[last], lb = w.sb[last];
  const F32Ops* vec = std::is_same<T, float>::value && op <= 3 ? &f32_ops() : nullptr;
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for_each_run(w, begin, end, [&](int64_t i, int64_t oa, int64_t ob, int64_t run) {
      const T* ap = a + oa;
      const T* bp = b + ob;
      T* op_ = out + i;
      if (vec) {
        const float* af = reinterpret_cast<const float*>(ap);
        const float* bf = reinterpret_cast<const float*>(bp);
        float* of = reinterpret_cast<float*>(op_);
        if (la == 1 && lb == 1) return vec->binary_vv(op, af, bf, of, run);
        if (la == 1 && lb == 0) return vec->binary_vs(op, af, *bf, of, run);
        if (la == 0 && lb == 1) return vec->binary_sv(op, *af, bf, of, run);
      }
      if (la == 1 && lb == 1) {
        switch (op) {  // loops the compiler vectorises for the other dtypes
          case 0: for (int64_t j = 0; j < run; j++) store(op_ + j, load(ap + j) + load(bp + j)); return;
          case 2: for (int64_t j = 0; j < run; j++) store(op_ + j, load(ap + j) * load(bp + j)); return;
          default: break;
        }
      }
      for (int64_t j = 0; j < run; j++) store(op_ + j, apply_binary<C>(op, load(ap + j * la), load(bp + j * lb)));
    });
  });
}

}  // namespace

void copy_strided(int src_dtype, const char* src, const int64_t* ss, int dst_dtype, char* dst, const int64_t* ds,
                  const int64_t* shape, int rank) {
  ANDROMEDA_DISPATCH_ALL(src_dtype, {
    using S = T;
    ANDROMEDA_DISPATCH_ALL(dst_dtype, {
      copy_typed(reinterpret_cast<const S*>(src), ss, reinterpret_cast<T*>(dst), ds, shape, rank);
    });
  });
}

void fill(int dtype, char* dst, int64_t count, double value) {
  ANDROMEDA_DISPATCH_ALL(dtype, {
    T* out = reinterpret_cast<T*>(dst);
    T v;
    store(&v, typename Compute<T>::type(value));
    parallel_for(count, kGrain, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) out[i] = v;
    });
  });
}

void unary(int op, int dtype, const char* x, char* out, int64_t count, double scalar) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const T* in = reinterpret_cast<const T*>(x);
    T* o = reinterpret_cast<T*>(out);
    const C s = C(scalar);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      const float* xf = reinterpret_cast<const float*>(x);
      float* of = reinterpret_cast<float*>(out);
      if (vec.unary(op, xf, of, 0, float(scalar))) {  // vectorised op: split across threads
        parallel_for(count, kGrain / 4, [&](int64_t begin, int64_t end) { vec.unary(op, xf + begin, of + begin, end - begin, float(scalar)); });
        return;
      }
    }
    parallel_for(count, kGrain / 4, [&](int64_t begin, int64_t end) {
      switch (op) {
        case 13: for (int64_t i = begin; i < end; i++) store(o + i, load(in + i) * s); break;
        case 14: for (int64_t i = begin; i < end; i++) store(o + i, load(in + i) + s); break;
        case 11: for (int64_t i = begin; i < end; i++) { const C v = load(in + i); store(o + i, v * v); } break;
        default: for (int64_t i = begin; i < end; i++) store(o + i, apply_unary<C>(op, load(in + i), s));
      }
    });
  });
}

void unary_grad(int op, int dtype, const char* x, const char* grad_out, char* grad_in, int64_t count) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    using C = typename Compute<T>::type;
    const T* in = reinterpret_cast<const T*>(x);
    const T* gy = reinterpret_cast<const T*>(grad_out);
    T* gx = reinterpret_cast<T*>(grad_in);
    if (std::is_same<T, float>::value) {
      const F32Ops& vec = f32_ops();
      const float* xf = reinterpret_cast<const float*>(x);
      const float* gyf = reinterpret_cast<const float*>(grad_out);
      float* gxf = reinterpret_cast<float*>(grad_in);
      if (vec.unary_grad(op, xf, gyf, gxf, 0)) {
        parallel_for(count, kGrain / 4, [&](int64_t begin, int64_t end) { vec.unary_grad(op, xf + begin, gyf + begin, gxf + begin, end - begin); });
        return;
      }
    }
    parallel_for(count, kGrain / 4, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) store(gx + i, load(gy + i) * apply_unary_grad<C>(op, load(in + i)));
    });
  });
}

void binary(int op, int dtype, const char* a, const int64_t* sa, const char* b, const int64_t* sb, char* out,
            const int64_t* shape, int rank) {
  ANDROMEDA_DISPATCH_ALL(dtype, {
    binary_typed<T>(op, reinterpret_cast<const T*>(a), sa, reinterpret_cast<const T*>(b), sb, reinterpret_cast<T*>(out), shape, rank);
  });
}

}  // namespace andromeda::cpu
