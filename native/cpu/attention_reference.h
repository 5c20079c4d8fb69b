// CPU kernels of the reference attention form (attention_reference.cc).
#pragma once
#include "../common/reference_attention.h"

namespace andromeda::cpu {

/** Probabilities into out (which may be scores itself); rows that see no key become all 0. */
void masked_softmax(const MaskedSoftmaxArgs& args, const char* scores, char* out);
/** Rotary + xPos + multiplier of x into out (which may be x itself). */
void rotary(const RotaryArgs& args, const char* x, char* out);

}  // namespace andromeda::cpu
