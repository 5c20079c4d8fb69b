// 8-bit AdamW over many tensors on the CPU (semantics: adamw8bit.h). The quantization blocks of all tensors are
// gathered into chunks of kChunkBlocks blocks and the chunks spread over the threads; a block is dequantized,
// updated and requantized in a thread's local arrays. Blocks are independent and the absmax is a maximum (exact
// in any order), so any thread count gives the same bits.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/kernels.h"
#include "../../cpu/parallel.h"
#include "adamw8bit.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kChunkBlocks = 64;

struct Constants {
  float b1, b2, eps, decay, step, inv_sqrt_bc2, grad_scale;
};

struct Chunk {
  const AdamW8bitTensorArgs* tensor;
  int64_t first_block, end_block;
};

/** A map with the index of its nearest-code search. */
struct IndexedMap {
  const float* values;
  AdamW8bitCodeIndex index;
};

/** Requantizes one block's new moments (x[0..n)) into codes and returns their absmax. */
float requantize(const float* x, int64_t n, const IndexedMap& map, uint8_t* codes) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; i++) absmax = std::max(absmax, std::fabs(x[i]));
  for (int64_t i = 0; i < n; i++)
    codes[i] = adamw8bit_nearest_code(map.values, map.index.start, absmax > 0.0f ? x[i] / absmax : 0.0f);
  return absmax;
}

template <typename G>
void update_block(const AdamW8bitTensorArgs& t, int64_t block, const IndexedMap& signed_map,
                  const IndexedMap& unsigned_map, const Constants& k) {
  const int64_t begin = block * kAdamW8bitBlock, n = std::min(t.count, begin + kAdamW8bitBlock) - begin;
  const G* grad = reinterpret_cast<const G*>(t.grad) + begin;
  float* param = t.param + begin;
  uint8_t* m_codes = t.m + begin;
  uint8_t* v_codes = t.v + begin;
  const float m_scale = t.m_absmax[block], v_scale = t.v_absmax[block];
  float m[kAdamW8bitBlock], v[kAdamW8bitBlock];
  for (int64_t i = 0; i < n; i++) {
    const float g = float(load(grad + i)) * k.grad_scale;
    const float m_old = signed_map.values[m_codes[i]] * m_scale, v_old = unsigned_map.values[v_codes[i]] * v_scale;
    const float mi = k.b1 * m_old + (1.0f - k.b1) * g;
    const float vi = k.b2 * v_old + (1.0f - k.b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denominator = std::sqrt(vi) * k.inv_sqrt_bc2 + k.eps;
    param[i] = param[i] * k.decay - (k.step * mi) / denominator;
  }
  t.m_absmax[block] = requantize(m, n, signed_map, m_codes);
  t.v_absmax[block] = requantize(v, n, unsigned_map, v_codes);
  if (!t.shadow) return;
  if (DType(t.shadow_dtype) == DType::BF16) {
    bf16* copy = reinterpret_cast<bf16*>(t.shadow) + begin;
    for (int64_t i = 0; i < n; i++) store(copy + i, param[i]);
  } else {
    f16* copy = reinterpret_cast<f16*>(t.shadow) + begin;
    for (int64_t i = 0; i < n; i++) store(copy + i, param[i]);
  }
}

void check_maps(const float* signed_map, const float* unsigned_map) {
  for (int i = 0; i < kAdamW8bitMapSize; i++) {
    const bool finite = std::isfinite(signed_map[i]) && std::isfinite(unsigned_map[i]);
    if (!finite || (i > 0 && (!(signed_map[i - 1] < signed_map[i]) || !(unsigned_map[i - 1] < unsigned_map[i])))) {
      throw std::invalid_argument("adamw8bitMany: the quantization maps must be finite and strictly increasing");
    }
  }
}

}  // namespace

void adamw8bit_many(const AdamW8bitTensorArgs* tensors, size_t n, const float* signed_map, const float* unsigned_map,
                    const AdamWArgs& a) {
  check_maps(signed_map, unsigned_map);
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < n; i++) {
    const AdamW8bitTensorArgs& t = tensors[i];
    if (t.shadow && t.shadow_dtype != int(DType::BF16) && t.shadow_dtype != int(DType::F16)) {
      throw std::invalid_argument("adamw8bitMany: the weight copy of tensor " + std::to_string(i) + " must be bfloat16 or float16");
    }
    if (t.grad_dtype < 0 || t.grad_dtype > int(DType::F16)) {
      throw std::invalid_argument("adamw8bitMany: the gradient of tensor " + std::to_string(i) + " is not a float dtype");
    }
    const int64_t blocks = (t.count + kAdamW8bitBlock - 1) / kAdamW8bitBlock;
    for (int64_t b = 0; b < blocks; b += kChunkBlocks) chunks.push_back({&t, b, std::min(blocks, b + kChunkBlocks)});
  }
  IndexedMap signed_indexed{signed_map, {}}, unsigned_indexed{unsigned_map, {}};
  signed_indexed.index.build(signed_map);
  unsigned_indexed.index.build(unsigned_map);
  const Constants k{float(a.beta1), float(a.beta2), float(a.eps), float(1.0 - a.lr * a.weight_decay),
                    float(a.lr / a.bias_correction1), float(1.0 / std::sqrt(a.bias_correction2)), float(a.grad_scale)};
  parallel_for(int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const Chunk& chunk = chunks[size_t(c)];
      const AdamW8bitTensorArgs& t = *chunk.tensor;
      ANDROMEDA_DISPATCH_FLOAT(t.grad_dtype, {
        for (int64_t b = chunk.first_block; b < chunk.end_block; b++) update_block<T>(t, b, signed_indexed, unsigned_indexed, k);
      });
    }
  });
}

}  // namespace andromeda::cpu
