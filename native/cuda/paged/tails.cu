// Engine.pagedTokenShift, pagedTailWrite and the two in one pass (pagedTokenShiftAndTailWrite) on CUDA: token
// shift across steps through the tail pool [num_blocks, ring, dim], which keeps each block's last `ring` sub-layer
// inputs (contract: position p of a sequence sits at [block_tables[s][p / block_size], p % ring]). One thread per 16-byte pack (or element) of a
// row; blocks loop over (sequence, query slot) pairs, so the grid is fixed by the host bounds.
#include <string>

#include "../common.cuh"
#include "../vec.cuh"
#include "batch.cuh"

namespace andromeda::cuda {
namespace {

using paged::BatchView;
using paged::Sequence;

// kStoreTails (only for steps of at most one row per sequence): each row is also stored as its position's tail, by
// the thread that read the same feature of the slot it may overwrite (ring = shifts), after reading it.
template <typename T, int W, bool kStoreTails>
__global__ void paged_token_shift_kernel(const T* x, T* tails, T* out, int64_t dim, int64_t chunk, int shifts,
                                         int64_t ring, const BatchView b) {
  const int64_t packs = dim / W;
  // Blocks walk the query slots (sequence s, query i < max_query_len); threads walk a row's packs.
  for (int64_t slot = blockIdx.x; slot < b.num_seqs * b.max_query_len; slot += gridDim.x) {
    const int64_t s = slot / b.max_query_len, i = slot % b.max_query_len;
    const Sequence seq = paged::read_sequence(b, s);
    if (i >= seq.query_len) continue;  // also every row of an invalid sequence
    const int64_t row = seq.first_row + i, position = seq.context_len - seq.query_len + i;
    T* tail = nullptr;
    if constexpr (kStoreTails) {
      const int64_t block = paged::block_of(b, seq, position);
      if (block >= 0) tail = tails + (block * ring + position % ring) * dim;
    }
    for (int64_t pk = threadIdx.x; pk < packs; pk += blockDim.x) {
      const int64_t f = pk * W;
      const int64_t k = f < int64_t(shifts + 1) * chunk ? f / chunk : 0;
      const int64_t source = position - k;
      Pack<T, W> v;
#pragma unroll
      for (int e = 0; e < W; e++) store(&v.v[e], 0.f);
      if (source >= 0) {
        if (i - k >= 0) {
          v = load_pack<T, W>(x + (row - k) * dim + f);
        } else {
          const int64_t block = paged::block_of(b, seq, source);
          if (block >= 0) v = load_pack<T, W>(tails + (block * ring + source % ring) * dim + f);
        }
      }
      store_pack<T, W>(out + row * dim + f, v);
      if (kStoreTails && tail) store_pack<T, W>(tail + f, load_pack<T, W>(x + row * dim + f));
    }
  }
}

template <typename T, int W>
__global__ void paged_tail_write_kernel(const T* x, T* tails, int64_t dim, int64_t ring, const BatchView b) {
  const int64_t packs = dim / W;
  for (int64_t slot = blockIdx.x; slot < b.num_seqs * b.max_query_len; slot += gridDim.x) {
    const int64_t s = slot / b.max_query_len, i = slot % b.max_query_len;
    const Sequence seq = paged::read_sequence(b, s);
    if (i >= seq.query_len) continue;
    const int64_t position = seq.context_len - seq.query_len + i;
    const int64_t block = paged::block_of(b, seq, position);
    if (block < 0) continue;
    // A later row of this step landing on the same slot (same block, position ≡ mod ring) writes it instead.
    bool superseded = false;
    for (int64_t later = i + ring; later < seq.query_len && !superseded; later += ring)
      superseded = paged::block_of(b, seq, position + (later - i)) == block;
    if (superseded) continue;
    const T* src = x + (seq.first_row + i) * dim;
    T* dst = tails + (block * ring + position % ring) * dim;
    for (int64_t pk = threadIdx.x; pk < packs; pk += blockDim.x)
      store_pack<T, W>(dst + pk * W, load_pack<T, W>(src + pk * W));
  }
}

/** Blocks for one per query slot, capped (the kernels loop). */
unsigned slot_blocks(const andromeda::PagedBatch& b) {
  const int64_t slots = b.num_seqs * b.max_query_len;
  const int64_t cap = int64_t(sm_count()) * 32;
  return unsigned(slots < cap ? slots : cap);
}

void require(bool ok, const char* kernel, const std::string& message) {
  if (!ok) throw std::invalid_argument(std::string(kernel) + ": " + message);
}

}  // namespace

namespace {

void launch_token_shift(int dtype, const char* x, char* tails, char* out, int64_t dim, int shifts, int64_t ring,
                        const PagedBatch& args, bool store_tails, const char* op) {
  require(shifts >= 0, op, "shifts must be ≥ 0");
  require(ring >= shifts, op, "ring must be at least shifts");
  require(args.block_size > 0, op, "blockSize must be positive");
  if (dim == 0 || args.total_queries == 0 || args.num_seqs == 0 || args.max_query_len == 0) return;
  const int64_t chunk = dim / (shifts + 1);
  const paged::BatchView b = paged::batch_view(args);
  const int threads = row_threads(dim, 8) > kThreads ? kThreads : row_threads(dim, 8);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    constexpr int64_t kPack = 16 / sizeof(T);
    const bool vec = dim % kPack == 0 && chunk % kPack == 0 && all_aligned16({x, tails, out});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      const auto kernel = store_tails ? paged_token_shift_kernel<T, W, true> : paged_token_shift_kernel<T, W, false>;
      kernel<<<slot_blocks(args), threads, 0, stream()>>>(reinterpret_cast<const T*>(x), reinterpret_cast<T*>(tails),
                                                           reinterpret_cast<T*>(out), dim, chunk, shifts, ring, b);
    });
  });
  check_launch(op);
}

}  // namespace

void paged_token_shift(int dtype, const char* x, const char* tails, char* out, int64_t dim, int shifts, int64_t ring,
                       const PagedBatch& args) {
  // Without kStoreTails the kernel only reads the tails.
  launch_token_shift(dtype, x, const_cast<char*>(tails), out, dim, shifts, ring, args, false, "pagedTokenShift");
}

void paged_token_shift_and_tail_write(int dtype, const char* x, char* tails, char* out, int64_t dim, int shifts,
                                      int64_t ring, const PagedBatch& args) {
  require(ring > 0, "pagedTokenShiftAndTailWrite", "ring must be positive");
  if (args.max_query_len <= 1) {
    launch_token_shift(dtype, x, tails, out, dim, shifts, ring, args, true, "pagedTokenShiftAndTailWrite");
    return;
  }
  paged_token_shift(dtype, x, tails, out, dim, shifts, ring, args);
  paged_tail_write(dtype, x, tails, dim, ring, args);
}

void paged_tail_write(int dtype, const char* x, char* tails, int64_t dim, int64_t ring, const PagedBatch& args) {
  require(ring > 0, "pagedTailWrite", "ring must be positive");
  require(args.block_size > 0, "pagedTailWrite", "blockSize must be positive");
  if (dim == 0 || args.total_queries == 0 || args.num_seqs == 0 || args.max_query_len == 0) return;
  const paged::BatchView b = paged::batch_view(args);
  const int threads = row_threads(dim, 8) > kThreads ? kThreads : row_threads(dim, 8);
  ANDROMEDA_CUDA_DISPATCH_FLOAT(dtype, {
    constexpr int64_t kPack = 16 / sizeof(T);
    const bool vec = dim % kPack == 0 && all_aligned16({x, tails});
    ANDROMEDA_CUDA_PACK_WIDTH(T, vec, {
      paged_tail_write_kernel<T, W><<<slot_blocks(args), threads, 0, stream()>>>(
          reinterpret_cast<const T*>(x), reinterpret_cast<T*>(tails), dim, ring, b);
    });
  });
  check_launch("pagedTailWrite");
}

}  // namespace andromeda::cuda
