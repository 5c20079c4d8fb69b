// Σ x² over many buffers on the CPU (semantics: sum_squares.h): one float64 partial per fixed chunk of a buffer
// (float32 through the vectorised kernel of simd_kernels.h), the partials added in chunk order, so the result does
// not depend on the thread count.
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/parallel.h"
#include "../../cpu/simd_kernels.h"
#include "sum_squares.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kChunk = 1 << 16;

struct Chunk {
  const SquaresInput* input;
  int64_t begin, end;
};

double chunk_squares(const Chunk& c, const F32Ops& vec) {
  double total = 0;
  ANDROMEDA_DISPATCH_FLOAT(c.input->dtype, {
    const T* x = reinterpret_cast<const T*>(c.input->x);
    if (std::is_same<T, float>::value) {
      total = vec.sum_squares(reinterpret_cast<const float*>(x) + c.begin, c.end - c.begin);
    } else {
      for (int64_t i = c.begin; i < c.end; i++) {
        const double v = double(load(x + i));
        total += v * v;
      }
    }
  });
  return total;
}

}  // namespace

double sum_of_squares_many(const SquaresInput* inputs, size_t n) {
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < n; i++) {
    const SquaresInput& in = inputs[i];
    if (in.dtype != int(DType::F32) && in.dtype != int(DType::F64) && in.dtype != int(DType::BF16) &&
        in.dtype != int(DType::F16))
      throw std::invalid_argument("sumOfSquares: buffer " + std::to_string(i) + " is not a float dtype (code " +
                                  std::to_string(in.dtype) + ")");
    for (int64_t begin = 0; begin < in.count; begin += kChunk) chunks.push_back({&in, begin, std::min(in.count, begin + kChunk)});
  }
  std::vector<double> partials(chunks.size());
  const F32Ops& vec = f32_ops();
  parallel_for(int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) partials[size_t(c)] = chunk_squares(chunks[size_t(c)], vec);
  });
  double total = 0;
  for (const double p : partials) total += p;
  return total;
}

}  // namespace andromeda::cpu
