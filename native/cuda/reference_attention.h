// CUDA kernels of the reference attention form (masked_softmax.cu, rotary.cu). Enqueued on the
// engine's stream; the host arrays in the arguments (slopes, inverse frequencies) are copied into
// the launch parameters, so they need to live only for the call.
#pragma once
#include "../common/reference_attention.h"
// masked_softmax(args, scores, out): probabilities into out (which may be scores itself); rows that see no key
// become all 0. rotary(args, x, out): rotary + xPos + multiplier of x into out (which may be x itself).
// Declared with every kernel in native/abi/generated/kernels.h.
#include "engine.h"
