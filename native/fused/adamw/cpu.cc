// AdamW over many tensors on the CPU (semantics: adamw.h). Every tensor is cut into chunks of kChunk elements and
// the chunks of all tensors are spread over the threads; a chunk takes the one-tensor `adamw` (kernels.h: on a chunk
// this small it runs on the calling thread), so both give the same bits, and then writes its weight copy while the
// updated weights are still in cache. Elementwise: any thread count gives the same bits.
#include <stdexcept>
#include <string>
#include <vector>

#include "../../common/dtype.h"
#include "../../cpu/kernels.h"
#include "../../cpu/parallel.h"
#include "adamw.h"
#include "clip.h"

namespace andromeda::cpu {
namespace {

constexpr int64_t kChunk = 1 << 14;  // at most the one-tensor kernel's task grain, so it does not fork again

struct Chunk {
  const AdamWTensorArgs* tensor;
  int64_t begin, end;
};

void store_copy(const AdamWTensorArgs& t, int64_t begin, int64_t end) {
  if (DType(t.shadow_dtype) == DType::BF16) {
    bf16* copy = reinterpret_cast<bf16*>(t.shadow);
    for (int64_t i = begin; i < end; i++) store(copy + i, t.param[i]);
  } else {
    f16* copy = reinterpret_cast<f16*>(t.shadow);
    for (int64_t i = begin; i < end; i++) store(copy + i, t.param[i]);
  }
}

}  // namespace

void adamw_many(const AdamWTensorArgs* tensors, size_t n, const AdamWArgs& clip_args) {
  AdamWArgs args = clip_args;
  const bool step = resolve_clip_on_host(args, "adamwMany");  // the chunks' adamw calls then clip no more
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < n; i++) {
    const AdamWTensorArgs& t = tensors[i];
    if (t.shadow && t.shadow_dtype != int(DType::BF16) && t.shadow_dtype != int(DType::F16)) {
      throw std::invalid_argument("adamwMany: the weight copy of tensor " + std::to_string(i) + " must be bfloat16 or float16");
    }
    if (t.grad_dtype < 0 || t.grad_dtype > int(DType::F16)) {
      throw std::invalid_argument("adamwMany: the gradient of tensor " + std::to_string(i) + " is not a float dtype");
    }
    for (int64_t begin = 0; begin < t.count; begin += kChunk) chunks.push_back({&t, begin, std::min(t.count, begin + kChunk)});
  }
  if (!step) return;  // a norm that is not finite: the step is skipped
  parallel_for(int64_t(chunks.size()), 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; c++) {
      const Chunk& k = chunks[size_t(c)];
      const AdamWTensorArgs& t = *k.tensor;
      const size_t grad_offset = size_t(k.begin) * size_t(dtype_bytes(DType(t.grad_dtype)));
      adamw(t.param + k.begin, t.grad_dtype, t.grad + grad_offset, t.m + k.begin, t.v + k.begin, k.end - k.begin, args);
      if (t.shadow) store_copy(t, k.begin, k.end);
    }
  });
}

}  // namespace andromeda::cpu
