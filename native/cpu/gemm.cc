// Batched GEMM. Operands are first packed into contiguous row-major compute-type panels (which also
// handles transposes and half types), then multiplied with an i-k-j loop the compiler vectorises.
#include <cstring>
#include <stdexcept>
#include <vector>

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"

namespace andromeda::cpu {
namespace {

template <typename T, typename C>
void gemm_typed(const GemmArgs& g) {
  const T* A = reinterpret_cast<const T*>(g.a);
  const T* B = reinterpret_cast<const T*>(g.b);
  T* Cm = reinterpret_cast<T*>(g.c);
  std::vector<C> bpack(size_t(g.k * g.n));
  for (int64_t bi = 0; bi < g.batch; bi++) {
    const T* a = A + bi * g.stride_a;
    const T* b = B + bi * g.stride_b;
    T* c = Cm + bi * g.stride_c;
    // B as [k, n] row-major.
    parallel_for(g.k, 64, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; p++)
        for (int64_t j = 0; j < g.n; j++)
          bpack[p * g.n + j] = C(load(g.trans_b ? b + j * g.ldb + p : b + p * g.ldb + j));
    });
    parallel_for(g.m, 4, [&](int64_t begin, int64_t end) {
      std::vector<C> row(static_cast<size_t>(g.n));
      std::vector<C> arow(static_cast<size_t>(g.k));
      for (int64_t i = begin; i < end; i++) {
        for (int64_t p = 0; p < g.k; p++) arow[p] = C(load(g.trans_a ? a + p * g.lda + i : a + i * g.lda + p));
        std::fill(row.begin(), row.end(), C(0));
        for (int64_t p = 0; p < g.k; p++) {
          const C av = arow[p];
          const C* bp = bpack.data() + p * g.n;
          C* r = row.data();
          for (int64_t j = 0; j < g.n; j++) r[j] += av * bp[j];
        }
        T* crow = c + i * g.ldc;
        const C alpha = C(g.alpha), beta = C(g.beta);
        for (int64_t j = 0; j < g.n; j++) {
          const C prev = beta == C(0) ? C(0) : beta * C(load(crow + j));
          store(crow + j, alpha * row[j] + prev);
        }
      }
    });
  }
}

}  // namespace

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  ANDROMEDA_DISPATCH_FLOAT(g.dtype, {
    using C = typename Compute<T>::type;
    gemm_typed<T, C>(g);
  });
}

}  // namespace andromeda::cpu
