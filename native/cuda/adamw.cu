// AdamW on float32 master weights with float32 moments; the gradient may be any float dtype. The
// arithmetic is the CPU engine's, operation for operation, so both engines take the same step.
// `adamw_many` updates a list of tensors in one launch per (gradient dtype, copy dtype): blocks take
// fixed-size chunks of the tensors, found by a binary search over the chunk offsets. Its per-element
// arithmetic is the one-tensor kernel's (`adamw_element`), so both give the same bits.
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.cuh"
#include "vec.cuh"

namespace andromeda::cuda {
namespace {

struct AdamWConstants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

AdamWConstants constants_of(const AdamWArgs& a) {
  return {float(a.beta1), float(a.beta2), float(a.eps), float(1.0 - a.lr * a.weight_decay),
          float(a.lr / a.bias_correction1), float(1.0 / std::sqrt(a.bias_correction2)), float(a.grad_scale)};
}

struct NoShadow {};
template <typename S>
__device__ __forceinline__ void write_shadow(S* shadow, int64_t i, float p) { store(shadow + i, p); }
__device__ __forceinline__ void write_shadow(NoShadow*, int64_t, float) {}

/** One element's update: returns the new weight, updates the moments in place. */
__device__ __forceinline__ float adamw_element(float param, float grad, float& m, float& v, const AdamWConstants& k) {
  const float g = grad * k.grad_scale;
  const float mi = k.b1 * m + (1.0f - k.b1) * g;
  const float vi = k.b2 * v + (1.0f - k.b2) * g * g;
  m = mi;
  v = vi;
  return param * k.decay - k.step * mi / (sqrtf(vi) * k.inv_sqrt_bc2 + k.eps);
}

template <typename T, typename S>
__global__ void adamw_kernel(float* param, const T* grad, float* m, float* v, int64_t n, AdamWConstants k, S* shadow) {
  ANDROMEDA_GRID_STRIDE(i, n) {
    float mi = m[i], vi = v[i];
    const float p = adamw_element(param[i], float(load(grad + i)), mi, vi, k);
    m[i] = mi;
    v[i] = vi;
    param[i] = p;
    write_shadow(shadow, i, p);
  }
}

// ---- many tensors ----
struct TensorChunks {
  float* param;
  const void* grad;
  float* m;
  float* v;
  void* shadow;
  int64_t count;
  int64_t first_chunk;  // index of this tensor's first chunk among all chunks of the launch
  int packed;           // every pointer allows 4-element packs
};

constexpr int64_t kChunk = 1 << 16;  // elements per block (a multiple of the pack size)

template <typename S>
__device__ __forceinline__ void store_shadow_pack(void* shadow, int64_t i, const float (&p)[4]) {
  if constexpr (!std::is_same<S, NoShadow>::value) {
    Pack<S, 4> o;
#pragma unroll
    for (int k = 0; k < 4; k++) store(&o.v[k], p[k]);
    store_pack<S, 4>(static_cast<S*>(shadow) + i, o);
  }
}

template <typename T, typename S>
__global__ void adamw_many_kernel(const TensorChunks* tensors, int count, AdamWConstants k) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (tensors[mid].first_chunk <= int64_t(blockIdx.x)) lo = mid;
    else hi = mid - 1;
  }
  const TensorChunks t = tensors[lo];
  const int64_t begin = (int64_t(blockIdx.x) - t.first_chunk) * kChunk, end = min(t.count, begin + kChunk);
  const T* grad = static_cast<const T*>(t.grad);
  S* shadow = static_cast<S*>(t.shadow);
  int64_t tail = begin;
  if constexpr (sizeof(T) <= 4) {  // float64 gradients take the element loop
    if (t.packed) {
      const int64_t packs = (end - begin) / 4;
      for (int64_t q = threadIdx.x; q < packs; q += blockDim.x) {
        const int64_t i = begin + 4 * q;
        const Pack<float, 4> pp = load_pack<float, 4>(t.param + i);
        const Pack<T, 4> pg = load_pack<T, 4>(grad + i);
        Pack<float, 4> pm = load_pack<float, 4>(t.m + i), pv = load_pack<float, 4>(t.v + i), out;
        float w[4];
#pragma unroll
        for (int e = 0; e < 4; e++) {
          w[e] = adamw_element(pp.v[e], float(load(&pg.v[e])), pm.v[e], pv.v[e], k);
          out.v[e] = w[e];
        }
        store_pack<float, 4>(t.m + i, pm);
        store_pack<float, 4>(t.v + i, pv);
        store_pack<float, 4>(t.param + i, out);
        store_shadow_pack<S>(t.shadow, i, w);
      }
      tail = begin + 4 * packs;
    }
  }
  for (int64_t i = tail + threadIdx.x; i < end; i += blockDim.x) {
    float mi = t.m[i], vi = t.v[i];
    const float p = adamw_element(t.param[i], float(load(grad + i)), mi, vi, k);
    t.m[i] = mi;
    t.v[i] = vi;
    t.param[i] = p;
    write_shadow(shadow, i, p);
  }
}

bool aligned_bytes(const void* p, size_t bytes) { return p == nullptr || reinterpret_cast<uintptr_t>(p) % bytes == 0; }

template <typename S>
void launch_many(int grad_dtype, const std::vector<const AdamWTensorArgs*>& items, const AdamWConstants& k) {
  std::vector<TensorChunks> host;
  int64_t chunks = 0;
  for (const AdamWTensorArgs* a : items) {
    if (a->count == 0) continue;
    const size_t gbytes = size_t(dtype_bytes(grad_dtype));
    const bool packed = aligned_bytes(a->param, 16) && aligned_bytes(a->m, 16) && aligned_bytes(a->v, 16) &&
                        aligned_bytes(a->grad, 4 * gbytes) &&
                        (!a->shadow || aligned_bytes(a->shadow, 4 * size_t(dtype_bytes(a->shadow_dtype))));
    host.push_back({a->param, a->grad, a->m, a->v, a->shadow, a->count, chunks, packed ? 1 : 0});
    chunks += (a->count + kChunk - 1) / kChunk;
  }
  if (host.empty()) return;
  if (chunks > 0x7fffffff) throw std::invalid_argument("adamwMany: too many elements for one launch");
  Scratch table(host.size() * sizeof(TensorChunks));
  check(cudaMemcpyAsync(table.as<TensorChunks>(), host.data(), host.size() * sizeof(TensorChunks), cudaMemcpyHostToDevice,
                        stream()),
        "adamwMany (tensor table)");
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    adamw_many_kernel<T, S><<<unsigned(chunks), kThreads, 0, stream()>>>(table.as<TensorChunks>(), int(host.size()), k);
  });
  check_launch("adamwMany");
}

}  // namespace

void adamw(float* param, int grad_dtype, const char* grad, float* m, float* v, int64_t count, const AdamWArgs& a,
           int shadow_dtype, char* shadow) {
  if (count == 0) return;
  const AdamWConstants k = constants_of(a);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(grad_dtype, {
    using G = T;
    if (!shadow) {
      adamw_kernel<G, NoShadow><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, nullptr);
    } else if (shadow_dtype == int(DType::BF16)) {
      adamw_kernel<G, bf16><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, reinterpret_cast<bf16*>(shadow));
    } else if (shadow_dtype == int(DType::F16)) {
      adamw_kernel<G, f16><<<grid_for(count), kThreads, 0, stream()>>>(param, reinterpret_cast<const G*>(grad), m, v, count, k, reinterpret_cast<f16*>(shadow));
    } else {
      throw std::invalid_argument("adamw: the weight copy must be bfloat16 or float16");
    }
  });
  check_launch("adamw");
}

void adamw_many(const AdamWTensorArgs* tensors, size_t n, const AdamWArgs& a) {
  // One launch per (gradient dtype, weight-copy dtype) present; usually exactly one.
  std::map<std::pair<int, int>, std::vector<const AdamWTensorArgs*>> groups;
  for (size_t i = 0; i < n; i++) {
    const AdamWTensorArgs& t = tensors[i];
    const int copy = t.shadow ? t.shadow_dtype : -1;
    if (t.shadow && copy != int(DType::BF16) && copy != int(DType::F16)) {
      throw std::invalid_argument("adamwMany: the weight copy of tensor " + std::to_string(i) + " must be bfloat16 or float16");
    }
    if (t.grad_dtype < 0 || t.grad_dtype > int(DType::F16)) {
      throw std::invalid_argument("adamwMany: the gradient of tensor " + std::to_string(i) + " is not a float dtype");
    }
    groups[{t.grad_dtype, copy}].push_back(&t);
  }
  const AdamWConstants k = constants_of(a);
  for (const auto& [key, items] : groups) {
    if (key.second == -1) launch_many<NoShadow>(key.first, items, k);
    else if (key.second == int(DType::BF16)) launch_many<bf16>(key.first, items, k);
    else launch_many<f16>(key.first, items, k);
  }
}

}  // namespace andromeda::cuda
