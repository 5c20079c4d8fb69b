// The CPU engine's kernel N-API functions: the glue generated once for both engines
// (native/abi/generated/kernel_bindings.inc), compiled here against the CPU kernels (kernels.h defines
// ANDROMEDA_ENGINE_NS = andromeda::cpu and ANDROMEDA_ENGINE_CPU).
#include "kernels.h"
#include "attention_reference.h"

#include "../abi/generated/kernel_bindings.inc"
