// The matrix product with a bias epilogue on the CPU (semantics: gemm_bias.h): C starts as the bias rows and the
// product accumulates into it with beta = 1, so each element is alpha · (A·B) + bias, rounded to C's dtype once at
// the end, as cuBLASLt's epilogue does.
#include <cstring>
#include <stdexcept>

#include "../../common/dtype.h"
#include "../../cpu/parallel.h"
#include "gemm_bias.h"

namespace andromeda::cpu {

void gemm_bias(const GemmArgs& g, const char* bias) {
  if (g.beta != 0) throw std::invalid_argument("matmul: a bias needs beta = 0");
  if (!bias) throw std::invalid_argument("matmul: the bias epilogue needs a bias");
  const size_t bytes = size_t(dtype_bytes(DType(g.dtype)));
  const size_t row_bytes = size_t(g.n) * bytes;
  parallel_for(g.batch * g.m, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(int64_t(row_bytes), 1)),
               [&](int64_t begin, int64_t end) {
                 for (int64_t r = begin; r < end; r++) {
                   const int64_t b = r / g.m, i = r - b * g.m;
                   std::memcpy(g.c + size_t(b * g.stride_c + i * g.ldc) * bytes, bias, row_bytes);
                 }
               });
  GemmArgs accumulate = g;
  accumulate.beta = 1;
  gemm(accumulate);
}

}  // namespace andromeda::cpu
