// Elementwise kernels: strided copy with casting, fill, unary maps and their derivatives, and
// broadcasting binary maps. The arithmetic mirrors native/cpu/elementwise.cc op for op.
#include <string>
#include <type_traits>
#include <vector>

#include "common.cuh"
#include "strided.cuh"

namespace andromeda::cuda {
namespace {

int64_t total(const int64_t* shape, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= shape[i];
  return n;
}

// ---- copy ----
template <typename S, typename D>
__global__ void cast_dense_kernel(const S* src, D* dst, int64_t n) {
  ANDROMEDA_GRID_STRIDE(i, n) store(dst + i, load(src + i));
}

template <typename S, typename D, typename Index>
__global__ void copy_strided_kernel(const S* src, D* dst, StridedLayout<2> l, int64_t n) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    int64_t off[2];
    strided_offsets<2>(l, Index(i), off);
    store(dst + off[1], load(src + off[0]));
  }
}

template <typename S, typename D>
void copy_typed(const char* src, char* dst, const StridedLayout<2>& l, int64_t n) {
  const S* s = reinterpret_cast<const S*>(src);
  D* d = reinterpret_cast<D*>(dst);
  if (is_dense(l, 0) && is_dense(l, 1)) {
    cast_dense_kernel<S, D><<<grid_for(n), kThreads, 0, stream()>>>(s, d, n);
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

template <typename T>
__global__ void fill_kernel(T* out, int64_t n, T value) {
  ANDROMEDA_GRID_STRIDE(i, n) out[i] = value;
}

// ---- unary ----
template <typename C>
__device__ __forceinline__ C gelu(C x) { return C(0.5) * x * (C(1) + erf(x * C(0.70710678118654752440))); }
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
    case 0: {  // gelu: Φ(x) + x φ(x)
      const C cdf = C(0.5) * (C(1) + erf(x * C(0.70710678118654752440)));
      const C pdf = exp(C(-0.5) * x * x) * C(0.39894228040143267794);
      return cdf + x * pdf;
    }
    case 1: { const C s = sigmoid(x); return s * (C(1) - s); }
    case 2: { const C s = sigmoid(x); return s * (C(1) + x * (C(1) - s)); }
    case 3: { const C t = tanh(x); return C(1) - t * t; }
    case 4: return x > C(0) ? C(1) : C(0);
    case 5: return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
    default: return C(NAN);
  }
}

template <typename T>
__global__ void unary_kernel(int op, const T* x, T* out, int64_t n, compute_t<T> s) {
  using C = compute_t<T>;
  switch (op) {  // the common ops get their own loops
    case 13: ANDROMEDA_GRID_STRIDE(i, n) store(out + i, C(load(x + i)) * s); break;
    case 14: ANDROMEDA_GRID_STRIDE(i, n) store(out + i, C(load(x + i)) + s); break;
    default: ANDROMEDA_GRID_STRIDE(i, n) store(out + i, apply_unary<C>(op, C(load(x + i)), s));
  }
}

template <typename T>
__global__ void unary_grad_kernel(int op, const T* x, const T* gy, T* gx, int64_t n) {
  using C = compute_t<T>;
  ANDROMEDA_GRID_STRIDE(i, n) store(gx + i, C(load(gy + i)) * apply_unary_grad<C>(op, C(load(x + i))));
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

template <typename T>
__global__ void binary_dense_kernel(int op, const T* a, const T* b, T* out, int64_t n) {
  using C = compute_t<T>;
  switch (op) {
    case 0: ANDROMEDA_GRID_STRIDE(i, n) store(out + i, C(load(a + i)) + C(load(b + i))); break;
    case 2: ANDROMEDA_GRID_STRIDE(i, n) store(out + i, C(load(a + i)) * C(load(b + i))); break;
    default: ANDROMEDA_GRID_STRIDE(i, n) store(out + i, apply_binary<C>(op, C(load(a + i)), C(load(b + i))));
  }
}

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
    fill_kernel<T><<<grid_for(count), kThreads, 0, stream()>>>(reinterpret_cast<T*>(dst), count, v);
  });
  check_launch("fill");
}

void unary(int op, int dtype, const char* x, char* out, int64_t count, double scalar) {
  if (op < 0 || op > 17) throw std::invalid_argument("unary: unknown op code " + std::to_string(op));
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    unary_kernel<T><<<grid_for(count), kThreads, 0, stream()>>>(op, reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out),
                                                                count, compute_t<T>(scalar));
  });
  check_launch("unary");
}

void unary_grad(int op, int dtype, const char* x, const char* grad_out, char* grad_in, int64_t count) {
  if (op < 0 || op > 5) throw std::invalid_argument("unary_grad: unknown op code " + std::to_string(op));
  if (count == 0) return;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    unary_grad_kernel<T><<<grid_for(count), kThreads, 0, stream()>>>(
        op, reinterpret_cast<const T*>(x), reinterpret_cast<const T*>(grad_out), reinterpret_cast<T*>(grad_in), count);
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
    const T* pa = reinterpret_cast<const T*>(a);
    const T* pb = reinterpret_cast<const T*>(b);
    T* po = reinterpret_cast<T*>(out);
    if (is_dense(l, 0) && is_dense(l, 1)) {
      binary_dense_kernel<T><<<grid_for(n), kThreads, 0, stream()>>>(op, pa, pb, po, n);
    } else if (n < (int64_t(1) << 31)) {
      binary_strided_kernel<T, uint32_t><<<grid_for(n), kThreads, 0, stream()>>>(op, pa, pb, po, l, n);
    } else {
      binary_strided_kernel<T, uint64_t><<<grid_for(n), kThreads, 0, stream()>>>(op, pa, pb, po, l, n);
    }
  });
  check_launch("binary");
}

}  // namespace andromeda::cuda
