// The fused attention's transform switch (attentionTransform), added to the CUDA engine's exports by
// register_attention. The kernels themselves (attentionForward, attentionBackward, attentionTransformPlan)
// are in the generated glue, native/cuda/binding_kernels.cc.
#include <napi.h>

#include <stdexcept>
#include <string>

#include "../../common/napi_args.h"
#include "attention.h"

namespace andromeda::cuda {
namespace {

using napi_args::guarded;

const char* const kTransformNames[] = {"auto", "kernel", "prepass"};

// ([mode: 'auto' | 'kernel' | 'prepass']) → the mode before the call (tests and benchmarks compare both paths)
Napi::Value Transform(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&]() -> Napi::Value {
    if (info.Length() == 0 || info[0].IsUndefined()) return Napi::String::New(info.Env(), kTransformNames[int(attention_transform())]);
    if (!info[0].IsString()) abi::type_error("attentionTransform", "mode", "'auto', 'kernel' or 'prepass'", info[0]);
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    for (int m = 0; m < 3; m++) {
      if (name == kTransformNames[m]) {
        return Napi::String::New(info.Env(), kTransformNames[int(set_attention_transform(AttentionTransform(m)))]);
      }
    }
    throw std::invalid_argument("attention transform '" + name + "': expected auto, kernel or prepass");
  });
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionTransform", Napi::Function::New(env, Transform, "attentionTransform"));
}

}  // namespace andromeda::cuda
