// Embedding lookup and its gradient. The backward pass is deterministic: ids are sorted (stable
// radix sort, positions as values), then each run of equal ids sums its gradient rows in order in
// float and adds the sum to its table row once, so no atomics touch the table.
#include <algorithm>
#include <climits>
#include <cub/device/device_radix_sort.cuh>

#include "common.cuh"

namespace andromeda::cuda {
namespace {

__global__ void find_first_bad_id(const int32_t* ids, int64_t count, int64_t vocab, int* first_bad) {
  ANDROMEDA_GRID_STRIDE(i, count) {
    if (ids[i] < 0 || ids[i] >= vocab) atomicMin(first_bad, int(i));
  }
}

template <typename T>
__global__ void gather_rows(const T* table, const int32_t* ids, T* out, int64_t count, int64_t dim, int64_t vocab) {
  ANDROMEDA_GRID_STRIDE(e, count * dim) {
    const int64_t i = e / dim, j = e - i * dim;
    const int32_t id = ids[i];
    out[e] = id >= 0 && id < vocab ? table[int64_t(id) * dim + j] : T(0);
  }
}

__global__ void iota(int32_t* out, int64_t count) {
  ANDROMEDA_GRID_STRIDE(i, count) out[i] = int32_t(i);
}

// Blocks (sorted position, slice of kRunColumns columns); the blocks at the start of a run of equal ids reduce the
// run, one column a thread. Ids outside [0, rows) name no row of the table and are skipped (the host cannot check
// ids that live on the device). A run's rows are added in order, but loaded kRunLoads at a time first: a frequent id
// (a space in byte-level text is hundreds of positions of a 2,048-token row) would otherwise wait for one load at a
// time, and its columns are spread over blocks so that one block does not walk the whole run for every column.
constexpr int kRunLoads = 8;
constexpr int kRunColumns = 256;
template <typename T>
__global__ void accumulate_runs(const int32_t* sorted_ids, const int32_t* positions, const T* grad_out, T* grad_table,
                                int64_t count, int64_t dim, int64_t rows) {
  using C = compute_t<T>;
  const int64_t p = blockIdx.x;
  const int32_t id = sorted_ids[p];
  if (id < 0 || id >= rows) return;
  if (p > 0 && sorted_ids[p - 1] == id) return;
  int64_t end = p + 1;
  while (end < count && sorted_ids[end] == id) end++;
  T* row = grad_table + int64_t(id) * dim;
  for (int64_t slice = int64_t(blockIdx.y) * kRunColumns; slice < dim; slice += int64_t(gridDim.y) * kRunColumns) {
    const int64_t slice_end = min(dim, slice + kRunColumns);
    for (int64_t j = slice + threadIdx.x; j < slice_end; j += blockDim.x) {
      C acc = C(load(row + j));
      int64_t q = p;
      for (; q + kRunLoads <= end; q += kRunLoads) {
        C rows_j[kRunLoads];
#pragma unroll
        for (int r = 0; r < kRunLoads; r++) rows_j[r] = C(load(grad_out + int64_t(positions[q + r]) * dim + j));
#pragma unroll
        for (int r = 0; r < kRunLoads; r++) acc += rows_j[r];
      }
      for (; q < end; q++) acc += C(load(grad_out + int64_t(positions[q]) * dim + j));
      store(row + j, acc);
    }
  }
}

}  // namespace

int64_t embedding(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab) {
  if (count == 0) return -1;
  if (count > INT_MAX) throw std::invalid_argument("embedding: more than 2^31 ids");
  Scratch flag(sizeof(int));
  const int sentinel = INT_MAX;
  check(cudaMemcpyAsync(flag.as<int>(), &sentinel, sizeof(int), cudaMemcpyHostToDevice, stream()), "embedding (flag)");
  find_first_bad_id<<<grid_for(count), kThreads, 0, stream()>>>(ids, count, vocab, flag.as<int>());
  check_launch("embedding");
  if (dim > 0) {
    ANDROMEDA_CUDA_DISPATCH_ALL(dtype, {
      gather_rows<T><<<grid_for(count * dim), kThreads, 0, stream()>>>(reinterpret_cast<const T*>(table), ids,
                                                                       reinterpret_cast<T*>(out), count, dim, vocab);
    });
    check_launch("embedding");
  }
  int first_bad = sentinel;
  download(&first_bad, reinterpret_cast<const char*>(flag.as<int>()), sizeof(int));
  return first_bad == sentinel ? -1 : int64_t(first_bad);
}

void embedding_gather(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab) {
  if (count == 0 || dim == 0) return;
  ANDROMEDA_CUDA_DISPATCH_ALL(dtype, {
    gather_rows<T><<<grid_for(count * dim), kThreads, 0, stream()>>>(reinterpret_cast<const T*>(table), ids,
                                                                     reinterpret_cast<T*>(out), count, dim, vocab);
  });
  check_launch("embedding");
}

void embedding_grad(int dtype, const int32_t* ids, const char* grad_out, char* grad_table, int64_t count, int64_t dim,
                    int64_t rows) {
  if (count == 0 || dim == 0) return;
  if (count > INT_MAX) throw std::invalid_argument("embedding_grad: more than 2^31 ids");
  const int n = int(count);
  size_t sort_bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, ids, (int32_t*)nullptr, (const int32_t*)nullptr,
                                        (int32_t*)nullptr, n, 0, 32, stream()),
        "embedding_grad (sort size)");
  Scratch buffers(size_t(3) * n * sizeof(int32_t) + sort_bytes + 256);
  int32_t* positions = buffers.as<int32_t>();
  int32_t* sorted_ids = positions + n;
  int32_t* sorted_positions = sorted_ids + n;
  void* sort_temp = reinterpret_cast<char*>(sorted_positions + n) + (256 - (size_t(3) * n * sizeof(int32_t)) % 256) % 256;
  iota<<<grid_for(count), kThreads, 0, stream()>>>(positions, count);
  check_launch("embedding_grad");
  check(cub::DeviceRadixSort::SortPairs(sort_temp, sort_bytes, ids, sorted_ids, positions, sorted_positions, n, 0, 32,
                                        stream()),
        "embedding_grad (sort)");
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    const dim3 grid(unsigned(count), unsigned(std::min<int64_t>((dim + kRunColumns - 1) / kRunColumns, 65535)));
    accumulate_runs<T><<<grid, row_threads(std::min<int64_t>(dim, kRunColumns), 1), 0, stream()>>>(
        sorted_ids, sorted_positions, reinterpret_cast<const T*>(grad_out), reinterpret_cast<T*>(grad_table), count, dim, rows);
  });
  check_launch("embedding_grad");
}

}  // namespace andromeda::cuda
