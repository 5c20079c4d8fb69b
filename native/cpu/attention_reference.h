// CPU kernels of the reference attention form (attention_reference.cc).
#pragma once
#include "../common/reference_attention.h"
// masked_softmax(args, scores, out): probabilities into out (which may be scores itself); rows that see no key
// become all 0. rotary(args, x, out): rotary + xPos + multiplier of x into out (which may be x itself).
// Declared with every kernel in native/abi/generated/kernels.h.
#include "kernels.h"
