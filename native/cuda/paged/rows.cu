// Engine.scatterRows on CUDA: dst row index[i] = src row i, skipping indices outside [0, rows). 16-byte packs when
// the row width and both pointers allow.
#include "../common.cuh"
#include "../vec.cuh"

namespace andromeda::cuda {
namespace {

template <typename T, int W>
__global__ void scatter_rows_kernel(const T* src, const int32_t* index, T* dst, int64_t count, int64_t width,
                                    int64_t rows) {
  const int64_t packs_per_row = width / W;
  ANDROMEDA_GRID_STRIDE(i, count * packs_per_row) {
    const int64_t row = i / packs_per_row, f = (i - row * packs_per_row) * W;
    const int64_t target = __ldg(index + row);
    if (target < 0 || target >= rows) continue;
    store_pack<T, W>(dst + target * width + f, load_pack<T, W>(src + row * width + f));
  }
}

}  // namespace

void scatter_rows(int dtype, const char* src, const int32_t* index, char* dst, int64_t count, int64_t width,
                  int64_t rows) {
  if (count == 0 || width == 0 || rows == 0) return;
  ANDROMEDA_CUDA_DISPATCH_ALL(dtype, {
    const bool vec = width % int64_t(16 / sizeof(T)) == 0 && all_aligned16({src, dst});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      scatter_rows_kernel<T, W><<<grid_for(count * (width / W)), kThreads, 0, stream()>>>(
          reinterpret_cast<const T*>(src), index, reinterpret_cast<T*>(dst), count, width, rows);
    });
  });
  check_launch("scatterRows");
}

}  // namespace andromeda::cuda
