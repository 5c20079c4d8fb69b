// Reductions over the middle axis of [outer, size, inner], accumulating in double (float64) or float.
#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"

namespace andromeda::cpu {

void reduce(int op, int dtype, const char* x, char* out, int64_t outer, int64_t size, int64_t inner) {
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
    const int threads = omp_get_max_threads();
    std::vector<double> partial(threads, 0.0);
    _Pragma("omp parallel for schedule(static) num_threads(threads)")
    for (int t = 0; t < threads; t++) {
      const int64_t begin = count * t / threads, end = count * (t + 1) / threads;
      double acc = 0;
      for (int64_t i = begin; i < end; i++) {
        const double v = double(load(in + i));
        acc += v * v;
      }
      partial[t] = acc;
    }
    for (double p : partial) total += p;
  });
  return total;
}

}  // namespace andromeda::cpu
