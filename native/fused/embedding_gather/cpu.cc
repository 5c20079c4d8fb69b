// Embedding rows without an id report on the CPU (semantics: embedding_gather.h). Rows are independent.
#include <cstring>

#include "../../common/dtype.h"
#include "../../cpu/parallel.h"
#include "embedding_gather.h"
#include "../../cpu/kernels.h"

namespace andromeda::cpu {

void embedding_gather(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab) {
  if (count == 0 || dim == 0) return;
  const size_t row_bytes = size_t(dim) * size_t(dtype_bytes(DType(dtype)));
  parallel_for(count, std::max<int64_t>(1, (int64_t(1) << 16) / int64_t(row_bytes)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; i++) {
      char* row = out + size_t(i) * row_bytes;
      if (ids[i] >= 0 && ids[i] < vocab) std::memcpy(row, table + size_t(ids[i]) * row_bytes, row_bytes);
      else std::memset(row, 0, row_bytes);
    }
  });
}

}  // namespace andromeda::cpu
