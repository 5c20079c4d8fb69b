// Random fills (parameter initialisation) from the counter-based generator both engines share.
#include "../common/dtype.h"
#include "kernels.h"
#include "parallel.h"

namespace andromeda::cpu {

void random_fill(int dtype, char* dst, int64_t count, bool normal, double a, double b, uint64_t seed) {
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    T* out = reinterpret_cast<T*>(dst);
    parallel_for(count, 1 << 14, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        const double value = normal ? a + b * normal_from_counter(seed, uint64_t(i))
                                    : a + (b - a) * uniform_from_counter(seed, uint64_t(i));
        store(out + i, value);
      }
    });
  });
}

}  // namespace andromeda::cpu
