// Embedding rows for ids already checked on the host: out[i] = table[ids[i]] over [count, dim], and a zero row for
// an id outside [0, vocab) (never read out of bounds). Unlike the checked `embedding` it reports nothing, so the
// CUDA form never waits for the device. Any dtype.
// Forms: cpu.cc; the CUDA form shares its gather kernel with the checked lookup (native/cuda/embedding.cu).
#pragma once
#include <cstdint>

namespace andromeda::cpu {
void embedding_gather(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab);
}  // namespace andromeda::cpu

namespace andromeda::cuda {
void embedding_gather(int dtype, const char* table, const int32_t* ids, char* out, int64_t count, int64_t dim, int64_t vocab);
}  // namespace andromeda::cuda
