// Elementwise kernels: strided copy with casting, fill, unary maps, broadcasting binary maps.
#include <cmath>
#include <stdexcept>
#include <vector>

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kGrain = 1 << 15;

int64_t total(const int64_t* shape, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

// Calls fn(linear, offset_a, offset_b) for elements [begin, end) of `shape` in row-major order.
template <typename Fn>
void for_each_strided(const int64_t* shape, int rank, const int64_t* sa, const int64_t* sb, int64_t begin,
                      int64_t end, Fn fn) {
  if (rank == 0) {
    if (begin < end) fn(int64_t(0), int64_t(0), int64_t(0));
    return;
  }
  std::vector<int64_t> idx(rank);
  int64_t rem = begin, oa = 0, ob = 0;
  for (int d = rank - 1; d >= 0; d--) {
    idx[d] = rem % shape[d];
    rem /= shape[d];
    oa += idx[d] * sa[d];
    ob += idx[d] * sb[d];
  }
  const int last = rank - 1;
  const int64_t la = sa[last], lb = sb[last];
  for (int64_t i = begin; i < end;) {
    const int64_t run = std::min(end - i, shape[last] - idx[last]);
    for (int64_t j = 0; j < run; j++) fn(i + j, oa + j * la, ob + j * lb);
    i += run;
    oa += run * la;
    ob += run * lb;
    idx[last] += run;
    for (int d = last; d > 0 && idx[d] == shape[d]; d--) {
      oa -= idx[d] * sa[d];
      ob -= idx[d] * sb[d];
      idx[d] = 0;
      idx[d - 1]++;
      oa += sa[d - 1];
      ob += sb[d - 1];
    }
  }
}

template <typename S, typename D>
void copy_typed(const S* src, const int64_t* ss, D* dst, const int64_t* ds, const int64_t* shape, int rank) {
  const int64_t n = total(shape, rank);
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for_each_strided(shape, rank, ss, ds, begin, end, [&](int64_t, int64_t os, int64_t od) {
      store(dst + od, load(src + os));
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
  bool dense = true;
  {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) {
      if (shape[d] != 1 && (sa[d] != s || sb[d] != s)) dense = false;
      s *= shape[d];
    }
  }
  if (dense) {
    parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
      switch (op) {  // the common ops get loops the compiler vectorises
        case 0: for (int64_t i = begin; i < end; i++) store(out + i, load(a + i) + load(b + i)); break;
        case 1: for (int64_t i = begin; i < end; i++) store(out + i, load(a + i) - load(b + i)); break;
        case 2: for (int64_t i = begin; i < end; i++) store(out + i, load(a + i) * load(b + i)); break;
        default: for (int64_t i = begin; i < end; i++) store(out + i, apply_binary<C>(op, load(a + i), load(b + i)));
      }
    });
    return;
  }
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
    for_each_strided(shape, rank, sa, sb, begin, end, [&](int64_t i, int64_t oa, int64_t ob) {
      store(out + i, apply_binary<C>(op, load(a + oa), load(b + ob)));
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
