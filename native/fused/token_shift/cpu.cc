// Token shift on the CPU (semantics: token_shift.h). Each output row is assembled from whole feature chunks: a
// chunk is copied from its source row, zeroed where there is none, or (accumulate) added into what the output
// row holds, in the compute type, as the CUDA form does. Rows are independent: any thread count gives the same bits.
#include <cstring>
#include <stdexcept>

#include "../../common/dtype.h"
#include "../../cpu/fused_rows.h"
#include "token_shift.h"
#include "../../cpu/kernels.h"

namespace andromeda::cpu {
namespace {

template <typename T>
void shift_rows(const T* x, T* out, const int32_t* segments, int64_t batch, int64_t n, int64_t dim, int shifts,
                bool backward, bool accumulate) {
  using C = typename Compute<T>::type;
  const int64_t chunk = dim / (shifts + 1), shifted_end = int64_t(shifts + 1) * chunk;
  // Features [from, from + width) of output row `row` (position t) take input position t ∓ k.
  auto move_chunk = [&](int64_t row, int64_t t, int64_t from, int64_t width, int64_t k) {
    if (width == 0) return;
    const int64_t source = backward ? t + k : t - k;
    const bool present = source >= 0 && source < n && (segments == nullptr || segments[row - t + source] == segments[row]);
    T* dst = out + row * dim + from;
    const T* src = x + (row - t + source) * dim + from;
    if (accumulate) {
      if (present)
        for (int64_t f = 0; f < width; f++) store(dst + f, C(load(dst + f)) + C(load(src + f)));
      // A missing source adds zero: the held values stay.
    } else if (present) {
      std::memcpy(dst, src, size_t(width) * sizeof(T));
    } else {
      std::memset(static_cast<void*>(dst), 0, size_t(width) * sizeof(T));
    }
  };
  parallel_for(batch * n, fused_row_grain(dim), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; row++) {
      const int64_t t = row % n;
      for (int k = 0; k <= shifts; k++) move_chunk(row, t, int64_t(k) * chunk, chunk, k);
      move_chunk(row, t, shifted_end, dim - shifted_end, 0);
    }
  });
}

}  // namespace

void token_shift(int dtype, const char* x, char* out, const int32_t* segments, int64_t batch, int64_t n, int64_t dim,
                 int shifts, bool backward, bool accumulate) {
  if (shifts < 0) throw std::invalid_argument("tokenShift: shifts must be ≥ 0");
  if (batch * n * dim == 0) return;
  ANDROMEDA_DISPATCH_FLOAT(dtype, {
    shift_rows<T>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(out), segments, batch, n, dim, shifts, backward,
                  accumulate);
  });
}

}  // namespace andromeda::cpu
