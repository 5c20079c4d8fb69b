// CUDA kernels of the reference attention form (masked_softmax.cu, rotary.cu). Enqueued on the
// engine's stream; the host arrays in the arguments (slopes, inverse frequencies) are copied into
// the launch parameters, so they need to live only for the call.
#pragma once
#include "../common/reference_attention.h"

namespace andromeda::cuda {

/** Probabilities into out (which may be scores itself); rows that see no key become all 0. */
void masked_softmax(const MaskedSoftmaxArgs& args, const char* scores, char* out);
/** Rotary + xPos + multiplier of x into out (which may be x itself). */
void rotary(const RotaryArgs& args, const char* x, char* out);

}  // namespace andromeda::cuda
