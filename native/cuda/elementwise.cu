// Elementwise kernels: strided copy with casting, fill, unary maps and their derivatives, and
// broadcasting binary maps. The arithmetic mirrors native/cpu/elementwise.cc op for op.
#include <initializer_list>
#include <string>
#include <type_traits>
#include <vector>

#include "activation.cuh"
#include "common.cuh"
#include "strided.cuh"
#include "vec.cuh"

namespace andromeda::cuda {
namespace {

int64_t total(const int64_t* shape, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

// ---- packed loops ----
// A grid-stride loop over n elements in packs of W (one vector access each), then the n mod W tail
// element by element. `pack(i)` handles elements i .. i+W−1, `elem(i)` element i.
template <int W, typename PackFn, typename ElemFn>
__device__ __forceinline__ void packed_for(int64_t n, PackFn pack, ElemFn elem) {
  const int64_t packs = n / W;
  ANDROMEDA_GRID_STRIDE(p, packs) pack(p * W);
  if constexpr (W > 1) {
    ANDROMEDA_GRID_STRIDE(i, n - packs * W) elem(packs * W + i);
  }
}

template <typename T>
bool aligned_to(const T* p, int elements) {
  return (reinterpret_cast<uintptr_t>(p) % (uintptr_t(elements) * sizeof(T))) == 0;
}

/** Calls BODY with constexpr W = the widest pack (≤ 16 bytes of the widest type) all pointers allow. */
#define ANDROMEDA_DENSE_WIDTH(Widest, aligned, ...)                              \
  {                                                                               \
    constexpr int kWide = int(16 / sizeof(Widest));                              \
    if (aligned(kWide)) { constexpr int W = kWide; __VA_ARGS__; }                \
    else { constexpr int W = 1; __VA_ARGS__; }                                   \
  }

// ---- copy ----
template <typename S, typename D, int W>
__global__ void cast_dense_kernel(const S* src, D* dst, int64_t n) {
  packed_for<W>(
      n,
      [&](int64_t i) {
        const Pack<S, W> in = load_pack<S, W>(src + i);
        Pack<D, W> out;
#pragma unroll
        for (int k = 0; k < W; k++) store(&out.v[k], load(&in.v[k]));
        store_pack<D, W>(dst + i, out);
      },
      [&](int64_t i) { store(dst + i, load(src + i)); });
}

template <typename S, typename D, typename Index>
__global__ void copy_strided_kernel(const S* src, D* dst, StridedLayout<2> l, int64_t n) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    int64_t off[2];
    strided_offsets<2>(l, Index(i), off);
    store(dst + off[1], load(src + off[0]));
  }
}

// Same-dtype strided copy whose innermost axis is contiguous in both operands: moves R-sized packs.
template <typename R, typename Index>
__global__ void copy_packs_kernel(const R* src, R* dst, StridedLayout<2> l, int64_t n) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    int64_t off[2];
    strided_offsets<2>(l, Index(i), off);
    dst[off[1]] = src[off[0]];
  }
}

/** The layout in units of `w` elements, when the innermost axis is contiguous in both operands and every
 *  outer stride and the innermost extent are multiples of `w`; false otherwise. */
bool layout_in_packs(const StridedLayout<2>& l, int64_t w, StridedLayout<2>& out) {
  if (l.rank == 0) return false;
  const int last = l.rank - 1;
  if (l.strides[0][last] != 1 || l.strides[1][last] != 1 || l.shape[last] % w != 0) return false;
  for (int d = 0; d < last; d++)
    for (int k = 0; k < 2; k++)
      if (l.strides[k][d] % w != 0) return false;
  out = l;
  out.shape[last] = l.shape[last] / w;
  for (int d = 0; d < last; d++)
    for (int k = 0; k < 2; k++) out.strides[k][d] = l.strides[k][d] / w;
  fast_divisor(uint64_t(out.shape[last]), out.div_mul[last], out.div_shift[last]);
  return true;
}

template <typename R>
bool try_copy_packs(const char* src, char* dst, const StridedLayout<2>& l, int elem_bytes) {
  const int64_t w = int64_t(sizeof(R)) / elem_bytes;
  if (w < 2 || reinterpret_cast<uintptr_t>(src) % sizeof(R) || reinterpret_cast<uintptr_t>(dst) % sizeof(R)) return false;
  StridedLayout<2> p;
  if (!layout_in_packs(l, w, p)) return false;
  int64_t n = 1;
  for (int d = 0; d < p.rank; d++) n *= p.shape[d];
  const R* s = reinterpret_cast<const R*>(src);
  R* d = reinterpret_cast<R*>(dst);
  if (n < (int64_t(1) << 31)) copy_packs_kernel<R, uint32_t><<<grid_for(n), kThreads, 0, stream()>>>(s, d, p, n);
  else copy_packs_kernel<R, uint64_t><<<grid_for(n), kThreads, 0, stream()>>>(s, d, p, n);
  check_launch("copy");
  return true;
}

template <typename S, typename D>
void copy_typed(const char* src, char* dst, const StridedLayout<2>& l, int64_t n) {
  const S* s = reinterpret_cast<const S*>(src);
  D* d = reinterpret_cast<D*>(dst);
  if (is_dense(l, 0) && is_dense(l, 1)) {
    using Widest = std::conditional_t<(sizeof(S) > sizeof(D)), S, D>;
    auto aligned = [&](int w) { return aligned_to(s, w) && aligned_to(d, w); };
    ANDROMEDA_DENSE_WIDTH(Widest, aligned, {
      cast_dense_kernel<S, D, W><<<grid_for((n + W - 1) / W), kThreads, 0, stream()>>>(s, d, n);
    });
  } else if (std::is_same<S, D>::value &&
             (try_copy_packs<uint4>(src, dst, l, int(sizeof(S))) || try_copy_packs<uint2>(src, dst, l, int(sizeof(S))) ||
              try_copy_packs<uint32_t>(src, dst, l, int(sizeof(S))))) {
    return;
  } else if (n < (int64_t(1) << 31)) {
    copy_strided_kernel<S, D, uint32_t><<<grid_for(n), kThreads, 0, stream()>>>(s, d, l, n);
  } else {
    copy_strided_kernel<S, D, uint64_t><<<grid_for(n), kThreads, 0, stream()>>>(s, d, l, n);
  }
  check_launch("copy");
}

// ---- fill ----
// The fill value, converted on the host with the rounding the kernels use for stores.
template <typename T> T host_value(double v) { return T(v); }
template <> bf16 host_value<bf16>(double v) { return __float2bfloat16_rn(float(v)); }
template <> f16 host_value<f16>(double v) { return __float2half_rn(float(v)); }

template <typename T, int W>
__global__ void fill_kernel(T* out, int64_t n, T value) {
  Pack<T, W> p;
#pragma unroll
  for (int k = 0; k < W; k++) p.v[k] = value;
  packed_for<W>(n, [&](int64_t i) { store_pack<T, W>(out + i, p); }, [&](int64_t i) { out[i] = value; });
}

// ---- unary ----
template <typename C>
__device__ __forceinline__ C sigmoid(C x) { return C(1) / (C(1) + exp(-x)); }

template <typename C>
__device__ __forceinline__ C apply_unary(int op, C x, C s) {
  switch (op) {
    case 0: return -x;
    case 1: return exp(x);
    case 2: return log(x);
    case 3: return sqrt(x);
    case 4: return C(1) / sqrt(x);
    case 5: return gelu(x);
    case 6: return sigmoid(x);
    case 7: return x * sigmoid(x);
    case 8: return tanh(x);
    case 9: return fabs(x);
    case 10: return x > C(0) ? x : C(0);
    case 11: return x * x;
    case 12: return C(1) / x;
    case 13: return x * s;
    case 14: return x + s;
    case 15: return pow(x, s);
    case 16: return sin(x);
    case 17: return cos(x);
    default: return C(NAN);
  }
}

template <typename C>
__device__ __forceinline__ C apply_unary_grad(int op, C x) {
  switch (op) {
    case 0: return gelu_grad(x);
    case 1: { const C s = sigmoid(x); return s * (C(1) - s); }
    case 2: { const C s = sigmoid(x); return s * (C(1) + x * (C(1) - s)); }
    case 3: { const C t = tanh(x); return C(1) - t * t; }
    case 4: return x > C(0) ? C(1) : C(0);
    case 5: return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
    default: return C(NAN);
  }
}

// Elementwise maps over dense buffers, W elements per access; F maps compute values.
template <typename T, int W, typename F>
__global__ void map1_kernel(const T* x, T* out, int64_t n, F f) {
  using C = compute_t<T>;
  packed_for<W>(
      n,
      [&](int64_t i) {
        const Pack<T, W> in = load_pack<T, W>(x + i);
        Pack<T, W> r;
#pragma unroll
        for (int k = 0; k < W; k++) store(&r.v[k], f(C(load(&in.v[k]))));
        store_pack<T, W>(out + i, r);
      },
      [&](int64_t i) { store(out + i, f(C(load(x + i)))); });
}

template <typename T, int W, typename F>
__global__ void map2_kernel(const T* a, const T* b, T* out, int64_t n, F f) {
  using C = compute_t<T>;
  packed_for<W>(
      n,
      [&](int64_t i) {
        const Pack<T, W> pa = load_pack<T, W>(a + i), pb = load_pack<T, W>(b + i);
        Pack<T, W> r;
#pragma unroll
        for (int k = 0; k < W; k++) store(&r.v[k], f(C(load(&pa.v[k])), C(load(&pb.v[k]))));
        store_pack<T, W>(out + i, r);
      },
      [&](int64_t i) { store(out + i, f(C(load(a + i)), C(load(b + i)))); });
}

template <typename C> struct ScaleBy { C s; __device__ C operator()(C x) const { return x * s; } };
template <typename C> struct AddScalar { C s; __device__ C operator()(C x) const { return x + s; } };
template <typename C> struct AnyUnary { int op; C s; __device__ C operator()(C x) const { return apply_unary<C>(op, x, s); } };
// (x, gy) → gy · f'(x)
template <typename C> struct UnaryDerivative { int op; __device__ C operator()(C x, C gy) const { return gy * apply_unary_grad<C>(op, x); } };

/** Launches a map kernel over `n` elements with the widest pack every pointer allows. */
template <typename T, typename Launch>
void launch_dense(int64_t n, std::initializer_list<const void*> ptrs, Launch launch) {
  constexpr int kWide = int(16 / sizeof(T));
  bool wide = true;
  for (const void* p : ptrs) wide = wide && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  if (wide) launch(std::integral_constant<int, kWide>{}, grid_for((n + kWide - 1) / kWide));
  else launch(std::integral_constant<int, 1>{}, grid_for(n));
}

// ---- binary ----
template <typename C>
__device__ __forceinline__ C apply_binary(int op, C a, C b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return a > b || isnan(a) ? a : b;
    case 5: return a < b || isnan(a) ? a : b;
    case 6: return pow(a, b);
    case 7: return a > b ? C(1) : C(0);
    case 8: return a < b ? C(1) : C(0);
    case 9: return a == b ? C(1) : C(0);
    default: return C(NAN);
  }
}

template <typename C> struct AddOf { __device__ C operator()(C a, C b) const { return a + b; } };
template <typename C> struct MulOf { __device__ C operator()(C a, C b) const { return a * b; } };
template <typename C> struct AnyBinary { int op; __device__ C operator()(C a, C b) const { return apply_binary<C>(op, a, b); } };

template <typename T, typename Index>
__global__ void binary_strided_kernel(int op, const T* a, const T* b, T* out, StridedLayout<3> l, int64_t n) {
  using C = compute_t<T>;
  ANDROMEDA_GRID_STRIDE(i, n) {
    int64_t off[3];
    strided_offsets<3>(l, Index(i), off);
    store(out + off[2], apply_binary<C>(op, C(load(a + off[0])), C(load(b + off[1]))));
  }
}

}  // namespace

void copy_strided(int src_dtype, const char* src, const int64_t* ss, int dst_dtype, char* dst, const int64_t* ds,
                  const int64_t* shape, int rank) {
  const int64_t n = total(shape, rank);
  if (n == 0) return;
  const int64_t* strides[2] = {ss, ds};
  const StridedLayout<2> l = simplify_layout<2>(shape, rank, strides);
  if (src_dtype == dst_dtype && is_dense(l, 0) && is_dense(l, 1)) {
    check(cudaMemcpyAsync(dst, src, size_t(n) * dtype_bytes(src_dtype), cudaMemcpyDeviceToDevice, stream()),
          "copy (cudaMemcpyAsync device→device)");
    return;
  }
  ANDROMEDA_CUDA_DISPATCH_ALL(src_dtype, {
    using S = T;
    ANDROMEDA_CUDA_DISPATCH_ALL(dst_dtype, { copy_typed<S, T>(src, dst, l, n); });
  });
}

void fill(int dtype, char* dst, int64_t count, double value) {
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_ALL(dtype, {
    const T v = host_value<T>(value);
    T* out = reinterpret_cast<T*>(dst);
    launch_dense<T>(count, {dst}, [&](auto w, unsigned grid) {
      fill_kernel<T, decltype(w)::value><<<grid, kThreads, 0, stream()>>>(out, count, v);
    });
  });
  check_launch("fill");
}

void unary(int op, int dtype, const char* x, char* out, int64_t count, double scalar) {
  if (op < 0 || op > 17) throw std::invalid_argument("unary: unknown op code " + std::to_string(op));
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    using C = compute_t<T>;
    const T* px = reinterpret_cast<const T*>(x);
    T* po = reinterpret_cast<T*>(out);
    const C s = C(scalar);
    launch_dense<T>(count, {x, out}, [&](auto w, unsigned grid) {
      constexpr int W = decltype(w)::value;
      // The common ops get their own kernels (no per-element switch).
      if (op == 13) map1_kernel<T, W><<<grid, kThreads, 0, stream()>>>(px, po, count, ScaleBy<C>{s});
      else if (op == 14) map1_kernel<T, W><<<grid, kThreads, 0, stream()>>>(px, po, count, AddScalar<C>{s});
      else map1_kernel<T, W><<<grid, kThreads, 0, stream()>>>(px, po, count, AnyUnary<C>{op, s});
    });
  });
  check_launch("unary");
}

void unary_grad(int op, int dtype, const char* x, const char* grad_out, char* grad_in, int64_t count) {
  if (op < 0 || op > 5) throw std::invalid_argument("unary_grad: unknown op code " + std::to_string(op));
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    using C = compute_t<T>;
    launch_dense<T>(count, {x, grad_out, grad_in}, [&](auto w, unsigned grid) {
      map2_kernel<T, decltype(w)::value><<<grid, kThreads, 0, stream()>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(grad_out), reinterpret_cast<T*>(grad_in), count,
          UnaryDerivative<C>{op});
    });
  });
  check_launch("unary_grad");
}

void binary(int op, int dtype, const char* a, const int64_t* sa, const char* b, const int64_t* sb, char* out,
            const int64_t* shape, int rank) {
  if (op < 0 || op > 9) throw std::invalid_argument("binary: unknown op code " + std::to_string(op));
  const int64_t n = total(shape, rank);
  if (n == 0) return;
  std::vector<int64_t> so(size_t(rank) + 1);
  {
    int64_t s = 1;
    for (int d = rank - 1; d >= 0; d--) { so[size_t(d)] = s; s *= shape[d]; }
  }
  const int64_t* strides[3] = {sa, sb, so.data()};
  const StridedLayout<3> l = simplify_layout<3>(shape, rank, strides);
  ANDROMEDA_CUDA_DISPATCH_ALL(dtype, {
    using C = compute_t<T>;
    const T* pa = reinterpret_cast<const T*>(a);
    const T* pb = reinterpret_cast<const T*>(b);
    T* po = reinterpret_cast<T*>(out);
    if (is_dense(l, 0) && is_dense(l, 1)) {
      launch_dense<T>(n, {a, b, out}, [&](auto w, unsigned grid) {
        constexpr int W = decltype(w)::value;
        if (op == 0) map2_kernel<T, W><<<grid, kThreads, 0, stream()>>>(pa, pb, po, n, AddOf<C>{});
        else if (op == 2) map2_kernel<T, W><<<grid, kThreads, 0, stream()>>>(pa, pb, po, n, MulOf<C>{});
        else map2_kernel<T, W><<<grid, kThreads, 0, stream()>>>(pa, pb, po, n, AnyBinary<C>{op});
      });
    } else if (n < (int64_t(1) << 31)) {
      binary_strided_kernel<T, uint32_t><<<grid_for(n), kThreads, 0, stream()>>>(op, pa, pb, po, l, n);
    } else {
      binary_strided_kernel<T, uint64_t><<<grid_for(n), kThreads, 0, stream()>>>(op, pa, pb, po, l, n);
    }
  });
  check_launch("binary");
}

}  // namespace andromeda::cuda
