// The CPU engine's residual-add + norm and bias + GELU kernels, added to the engine's exports by register_fused
// through the bindings both engines share (native/common/fused_napi.h).
#include <napi.h>

#include "../common/fused_napi.h"
#include "fused.h"

namespace andromeda::cpu {
namespace {

constexpr char kEngine[] = "cpu engine";

}  // namespace

void register_fused(Napi::Env env, Napi::Object exports) {
  napi_args::NormGeluBinding<kEngine, add_norm, add_norm_grad, bias_gelu, bias_gelu_grad>::register_into(env, exports);
}

}  // namespace andromeda::cpu
