// Σ x² over many buffers on the CPU (semantics: sum_squares.h): one float64 partial per fixed chunk of a buffer,
// squares and sums in float64 as the CUDA form's, the partials added in chunk order, so the result does not depend
// on the thread count.
#include <stdexcept>
#include <string>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/parallel.h"
#include "sum_squares.h"
#include "../../cpu/kernels.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kChunk = 1 << 16;

struct Chunk {
  const SquaresInput* input;
  int64_t begin, end;
};

/** Σx² of one chunk in float64, over 8 interleaved accumulators (a fixed order the compiler can vectorise). */
template <typename T>
double chunk_squares(const T* x, int64_t begin, int64_t end) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = begin;
  for (; i + 8 <= end; i += 8)
    for (int l = 0; l < 8; l++) {
      const double v = double(load(x + i + l));
      acc[l] += v * v;
    }
  for (int l = 0; i < end; i++, l++) {
    const double v = double(load(x + i));
    acc[l] += v * v;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double chunk_squares(const Chunk& c) {
  double total = 0;
  ANDROMEDA_DISPATCH_FLOAT(c.input->dtype, { total = chunk_squares(reinterpret_cast<const T*>(c.input->x), c.begin, c.end); });
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
  parallel_for(int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) partials[size_t(c)] = chunk_squares(chunks[size_t(c)]);
  });
  double total = 0;
  for (const double p : partials) total += p;
  return total;
}

void sum_of_squares_many_to(const SquaresInput* inputs, size_t n, double* out) { *out = sum_of_squares_many(inputs, n); }

}  // namespace andromeda::cpu
