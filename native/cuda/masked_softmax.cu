// Attention probabilities of the reference form: one block per row of the scores [batch, heads,
// queryLen, keyLen], adding ALiBi (−slope·|p_q − p_k|) and the causal and document masks per element,
// with float arithmetic (double for float64). The first pass keeps a running (max, Σexp) over the keys
// the row may see; the second re-reads them (now in L1/L2) and writes the probabilities, and writes
// the causal tail (keys after the query) as zeros without reading it. Rows are read in 16-byte vectors
// when the layout allows.
#include <algorithm>
#include <climits>
#include <string>

#include "common.cuh"
#include "online_softmax.cuh"
#include "vec.cuh"
#include "reference_attention.h"

namespace andromeda::cuda {
namespace {

constexpr int kMaxSlopes = 256;

struct MaskedSoftmaxParams {
  int64_t rows, heads, q_len, k_len, query_offset, q_stride, k_stride;
  const int32_t* q_pos;
  const int32_t* k_pos;
  const int32_t* q_seg;
  const int32_t* k_seg;
  int causal, has_alibi;
  double slopes[kMaxSlopes];
};

template <typename T, int V>
__global__ void __launch_bounds__(1024) masked_softmax_kernel(const T* x, T* y, const MaskedSoftmaxParams p) {
  using C = compute_t<T>;
  const int64_t K = p.k_len;
  const C neg_inf = -C(INFINITY);
  for (int64_t row = blockIdx.x; row < p.rows; row += gridDim.x) {
    const int64_t i = row % p.q_len, bh = row / p.q_len, h = bh % p.heads, b = bh / p.heads;
    const int64_t q_pos = p.q_pos ? int64_t(p.q_pos[b * p.q_stride + i]) : i + p.query_offset;
    const int32_t* key_pos = p.k_pos ? p.k_pos + b * p.k_stride : nullptr;
    const int32_t* key_seg = p.k_seg ? p.k_seg + b * p.k_stride : nullptr;
    const int32_t q_seg = p.q_seg ? p.q_seg[b * p.q_stride + i] : 0;
    int64_t end = K;
    if (p.causal) end = max(int64_t(0), min(K, i + p.query_offset + 1));
    const C slope = p.has_alibi ? C(p.slopes[h]) : C(0);
    const T* xr = x + row * K;
    T* yr = y + row * K;
    // Biased score of key j, −∞ when masked (also keys j ≥ end, which only the last pack can hold).
    auto score = [&](int64_t j, T raw) -> C {
      if (j >= end || (key_seg && key_seg[j] != q_seg)) return neg_inf;
      C s = C(load(&raw));
      if (slope != C(0)) {
        const int64_t kp = key_pos ? int64_t(key_pos[j]) : j;
        s -= slope * C(q_pos > kp ? q_pos - kp : kp - q_pos);
      }
      return s;
    };
    MaxSum<C> acc;
    for (int64_t base = int64_t(threadIdx.x) * V; base < end; base += int64_t(blockDim.x) * V) {
      const Pack<T, V> pk = load_pack<T, V>(xr + base);
#pragma unroll
      for (int e = 0; e < V; e++) acc.add(score(base + e, pk.v[e]));
    }
    acc = block_max_sum(acc);
    const bool empty = acc.max == neg_inf;
    const C mx = empty ? C(0) : acc.max;
    const C inv = empty ? C(0) : C(1) / acc.sum;
    for (int64_t base = int64_t(threadIdx.x) * V; base < K; base += int64_t(blockDim.x) * V) {
      Pack<T, V> out;
      if (base < end && !empty) {
        const Pack<T, V> pk = load_pack<T, V>(xr + base);
#pragma unroll
        for (int e = 0; e < V; e++) {
          const C s = score(base + e, pk.v[e]);
          store(&out.v[e], s == neg_inf ? C(0) : exp(s - mx) * inv);
        }
      } else {
#pragma unroll
        for (int e = 0; e < V; e++) store(&out.v[e], C(0));
      }
      store_pack<T, V>(yr + base, out);
    }
  }
}

template <typename T, int V>
void launch(const MaskedSoftmaxParams& p, const char* x, char* y) {
  const int64_t packs = (p.k_len + V - 1) / V;
  const int threads = row_threads(packs, 2);
  const unsigned blocks = unsigned(std::min<int64_t>(p.rows, INT_MAX));
  masked_softmax_kernel<T, V><<<blocks, threads, 0, stream()>>>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(y), p);
}

}  // namespace

void masked_softmax(const MaskedSoftmaxArgs& a, const char* scores, char* out) {
  const int64_t rows = a.batch * a.heads * a.query_len;
  if (rows == 0 || a.key_len == 0) return;
  if (a.alibi_slopes && a.heads > kMaxSlopes) {
    throw std::invalid_argument("maskedSoftmax: ALiBi supports at most " + std::to_string(kMaxSlopes) + " heads on CUDA, got " + std::to_string(a.heads));
  }
  MaskedSoftmaxParams p{};
  p.rows = rows;
  p.heads = a.heads;
  p.q_len = a.query_len;
  p.k_len = a.key_len;
  p.query_offset = a.query_offset;
  p.q_stride = a.query_stride;
  p.k_stride = a.key_stride;
  p.q_pos = a.query_positions;
  p.k_pos = a.key_positions;
  p.q_seg = a.query_segments;
  p.k_seg = a.key_segments;
  p.causal = a.causal;
  p.has_alibi = a.alibi_slopes != nullptr;
  if (a.alibi_slopes) std::copy(a.alibi_slopes, a.alibi_slopes + a.heads, p.slopes);
  const int bytes = dtype_bytes(a.dtype);
  // 16-byte packs need every row to start on a 16-byte boundary.
  const bool aligned = (reinterpret_cast<uintptr_t>(scores) | reinterpret_cast<uintptr_t>(out)) % 16 == 0 && (a.key_len * bytes) % 16 == 0;
  ANDROMEDA_CUDA_DISPATCH_FLOAT(a.dtype, {
    constexpr int kPack = 16 / sizeof(T);
    if (aligned) launch<T, kPack>(p, scores, out);
    else launch<T, 1>(p, scores, out);
  });
  check_launch("maskedSoftmax");
}

}  // namespace andromeda::cuda
