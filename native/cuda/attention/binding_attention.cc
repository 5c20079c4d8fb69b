// The fused attention's N-API functions (attentionForward, attentionBackward, attentionTransformPlan) are
// generated from native/abi/kernels.mjs into native/abi/generated/kernel_bindings.inc; this hook stays for the
// attention family's own functions, of which there are none now.
#include <napi.h>

namespace andromeda::cuda {

void register_attention(Napi::Env, Napi::Object) {}

}  // namespace andromeda::cuda
