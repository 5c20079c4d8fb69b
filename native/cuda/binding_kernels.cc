// The CUDA engine's kernel N-API functions: the glue generated once for both engines
// (native/abi/generated/kernel_bindings.inc), compiled here against the CUDA kernels (engine.h defines
// ANDROMEDA_ENGINE_NS = andromeda::cuda and ANDROMEDA_ENGINE_CUDA).
#include "engine.h"
#include "reference_attention.h"
#include "attention/attention.h"

#include "../abi/generated/kernel_bindings.inc"
