// Σ x² over several float buffers, accumulated in float64 (the global gradient norm): returned to the host with
// one wait (sum_of_squares_many), or left in the engine's memory for a clipping AdamW step to read
// (sum_of_squares_many_to: no wait). Both forms cut every buffer into fixed chunks of 2^16 elements, take one
// float64 partial per chunk and add the partials in chunk order, so the result does not depend on the thread or
// block count.
// Forms: cpu.cc, cuda.cu.
#pragma once
#include <cstddef>
#include <cstdint>

namespace andromeda {

struct SquaresInput {
  int dtype;
  const char* x;
  int64_t count;
};

}  // namespace andromeda
