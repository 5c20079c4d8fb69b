// Reductions over the middle axis of [outer, size, inner], accumulating in double (float64) or float.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <algorithm>
#include <type_traits>
#include <vector>

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"
#include "simd_kernels.h"

namespace andromeda::cpu {
namespace {

double* scratch_f64(size_t count) {
  static thread_local std::vector<double> buf;
  if (buf.size() < count) buf.resize(count);
  return buf.data();
}

// Float32 sums: rows (inner == 1) with the vector kernel; middle-axis sums (inner > 1, e.g. bias
// gradients) as float64 column accumulators over chunks of the inner axis, split across threads.
void sum_f32(const float* in, float* o, int64_t outer, int64_t size, int64_t inner) {
  const F32Ops& vec = f32_ops();
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(size, 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) o[r] = float(vec.sum(in + r * size, size));
    });
    return;
  }
  const int64_t blocks = reduction_blocks(size, outer * size * inner);
  if (outer < 8 && blocks > 1) {
    // Few output rows (bias gradients): each block of the summed axis is added over the whole inner
    // width (streaming reads) into its own float64 partial; the partials are then added in block order.
    double* partial = scratch_f64(size_t(blocks) * size_t(outer * inner));
    parallel_tasks(blocks, [&](int64_t t, int) {
      double* acc = partial + size_t(t) * size_t(outer * inner);
      std::fill(acc, acc + outer * inner, 0.0);
      const int64_t s0 = size * t / blocks, s1 = size * (t + 1) / blocks;
      for (int64_t a = 0; a < outer; a++)
        for (int64_t s = s0; s < s1; s++) vec.accumulate_f64(acc + a * inner, in + (a * size + s) * inner, inner);
    });
    for (int64_t j = 0; j < outer * inner; j++) {
      double total = 0;
      for (int64_t t = 0; t < blocks; t++) total += partial[size_t(t) * size_t(outer * inner) + size_t(j)];
      o[j] = float(total);
    }
    return;
  }
  const int threads = thread_count();
  int64_t chunk = std::max<int64_t>(64, (inner + threads - 1) / threads);
  chunk = std::min(inner, (chunk + 15) / 16 * 16);
  const int64_t chunks = (inner + chunk - 1) / chunk;
  parallel_for(outer * chunks, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(size * chunk, 1)), [&](int64_t begin, int64_t end) {
    double* acc = scratch_f64(size_t(chunk));
    for (int64_t task = begin; task < end; task++) {
      const int64_t a = task / chunks, j0 = task % chunks * chunk, width = std::min(chunk, inner - j0);
      std::fill(acc, acc + width, 0.0);
      const float* base = in + a * size * inner + j0;
      for (int64_t s = 0; s < size; s++) vec.accumulate_f64(acc, base + s * inner, width);
      for (int64_t j = 0; j < width; j++) o[a * inner + j0 + j] = float(acc[j]);
    }
  });
}

}  // namespace

void reduce(int op, int dtype, const char* x, char* out, int64_t outer, int64_t size, int64_t inner) {
  if (op == 0 && DType(dtype) == DType::F32 && outer * inner > 0) {
    sum_f32(reinterpret_cast<const float*>(x), reinterpret_cast<float*>(out), outer, size, inner);
    return;
  }
  ANDROMEDA_DISPATCH_ALL(dtype, {
    using Acc = double;
    const T* in = reinterpret_cast<const T*>(x);
    T* o = reinterpret_cast<T*>(out);
    const Acc init = op == 0 ? 0.0 : (op == 1 ? -std::numeric_limits<Acc>::infinity() : std::numeric_limits<Acc>::infinity());
    parallel_for(outer * inner, std::max<int64_t>(1, (1 << 14) / std::max<int64_t>(size, 1)), [&](int64_t begin, int64_t end) {
      if (inner == 1) {
        for (int64_t r = begin; r < end; r++) {
          const T* row = in + r * size;
          Acc acc = init;
          if (op == 0) {
            for (int64_t s = 0; s < size; s++) acc += Acc(load(row + s));
          } else {
            for (int64_t s = 0; s < size; s++) {
              const Acc v = Acc(load(row + s));
              if (std::isnan(v) || (op == 1 ? v > acc : v < acc)) acc = v;
            }
          }
          store(o + r, typename Compute<T>::type(acc));
        }
        return;
      }
      for (int64_t r = begin; r < end; r++) {
        const int64_t a = r / inner, i = r % inner;
        const T* base = in + a * size * inner + i;
        Acc acc = init;
        for (int64_t s = 0; s < size; s++) {
          const Acc v = Acc(load(base + s * inner));
          if (op == 0) acc += v;
          else if (std::isnan(v) || (op == 1 ? v > acc : v < acc)) acc = v;
        }
        store(o + r, typename Compute<T>::type(acc));
      }
    });
  });
}

double sum_of_squares(int dtype, const char* x, int64_t count) {
  double total = 0;
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    const T* in = reinterpret_cast<const T*>(x);
    const int64_t blocks = reduction_blocks(count, count);
    double* partial = scratch_f64(size_t(blocks));
    const F32Ops* vec = std::is_same<T, float>::value ? &f32_ops() : nullptr;
    parallel_tasks(blocks, [&](int64_t t, int) {
      const int64_t begin = count * t / blocks, end = count * (t + 1) / blocks;
      if (vec) {
        partial[t] = vec->sum_squares(reinterpret_cast<const float*>(in) + begin, end - begin);
        return;
      }
      double acc = 0;
      for (int64_t i = begin; i < end; i++) {
        const double v = double(load(in + i));
        acc += v * v;
      }
      partial[t] = acc;
    });
    for (int64_t t = 0; t < blocks; t++) total += partial[t];
  });
  return total;
}

}  // namespace andromeda::cpu
