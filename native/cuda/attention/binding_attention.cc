// N-API functions of the fused attention (attentionForward, attentionBackward, attentionDecode), added
// to the CUDA engine's exports by register_attention. The configuration object has the fields of
// CudaAttentionConfig in src/engine/cuda-attention.ts; buffers are device addresses (doubles) or null.
#include <napi.h>

#include <initializer_list>
#include <stdexcept>
#include <string>

#include "../../common/napi_args.h"
#include "attention.h"

namespace andromeda::cuda {
namespace {

using namespace andromeda::napi_args;

const float* float32_array(const Napi::Object& o, const char* name) {
  const Napi::Value v = o.Get(name);
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
    throw std::invalid_argument(std::string("attention: ") + name + " must be a Float32Array or null");
  }
  return v.As<Napi::Float32Array>().Data();
}

double number(const Napi::Object& o, const char* name) { return o.Get(name).As<Napi::Number>().DoubleValue(); }

AttentionProblem problem_of(const Napi::Object& o) {
  AttentionProblem p;
  p.dtype = int(number(o, "dtype"));
  p.batch = int(number(o, "batch"));
  p.heads = int(number(o, "heads"));
  p.kv_heads = int(number(o, "kvHeads"));
  p.q_len = int64_t(number(o, "queryLen"));
  p.k_len = int64_t(number(o, "keyLen"));
  p.head_dim = int(number(o, "headDim"));
  p.scale = number(o, "scale");
  p.causal = o.Get("causal").As<Napi::Boolean>().Value();
  p.query_offset = int64_t(number(o, "queryOffset"));
  p.alibi_slopes = float32_array(o, "alibiSlopes");
  p.rotary_dim = int(number(o, "rotaryDim"));
  p.rotary_inv_freq = float32_array(o, "rotaryInvFreq");
  p.xpos_scale_base = number(o, "xposScaleBase");
  p.key_scale = reinterpret_cast<const float*>(opt_ptr(o.Get("keyScale")));
  p.q_positions = reinterpret_cast<const int32_t*>(opt_ptr(o.Get("queryPositions")));
  p.k_positions = reinterpret_cast<const int32_t*>(opt_ptr(o.Get("keyPositions")));
  p.q_segments = reinterpret_cast<const int32_t*>(opt_ptr(o.Get("querySegments")));
  p.k_segments = reinterpret_cast<const int32_t*>(opt_ptr(o.Get("keySegments")));
  const Napi::Value lo = o.Get("positionMin"), hi = o.Get("positionMax");
  if (lo.IsNumber() && hi.IsNumber()) {
    p.has_position_range = true;
    p.position_min = int64_t(lo.As<Napi::Number>().DoubleValue());
    p.position_max = int64_t(hi.As<Napi::Number>().DoubleValue());
  }
  return p;
}

/** Option `name` of `o`, one of `names` (index = enum value); absent or undefined gives the first. */
int option_of(const Napi::Object& o, const char* name, std::initializer_list<const char*> names) {
  const Napi::Value v = o.Get(name);
  if (v.IsUndefined()) return 0;
  std::string expected;
  if (v.IsString()) {
    const std::string value = v.As<Napi::String>().Utf8Value();
    int i = 0;
    for (const char* n : names) {
      if (value == n) return i;
      i++;
    }
  }
  for (const char* n : names) expected += (expected.empty() ? "'" : ", '") + std::string(n) + "'";
  throw std::invalid_argument(std::string("attention options: ") + name + " must be one of " + expected);
}

// The kernels a call runs on: CudaAttentionOptions in src/engine/cuda-attention.ts, or undefined for the heuristics'.
AttentionChoices choices_of(const Napi::Value& v) {
  AttentionChoices c;
  if (v.IsUndefined() || v.IsNull()) return c;
  if (!v.IsObject()) throw std::invalid_argument("attention options must be an object");
  const Napi::Object o = v.As<Napi::Object>();
  c.path = AttentionPath(option_of(o, "path", {"auto", "tiled", "decode"}));
  c.forward = attention::KernelRequest(option_of(o, "forwardKernel", {"auto", "mma", "hopper"}));
  c.backward = attention::KernelRequest(option_of(o, "backwardKernel", {"auto", "mma", "hopper"}));
  c.transform = AttentionTransform(option_of(o, "transform", {"auto", "kernel", "prepass"}));
  return c;
}

Napi::Value argument(const Napi::CallbackInfo& info, size_t i) { return i < info.Length() ? info[i] : info.Env().Undefined(); }

// (q, k, v, out, lse, config, options?)
Napi::Value Forward(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    attention_forward(problem_of(info[5].As<Napi::Object>()), ptr_of(info[0]), ptr_of(info[1]), ptr_of(info[2]),
                      ptr_of(info[3]), reinterpret_cast<float*>(ptr_of(info[4])), choices_of(argument(info, 6)));
  });
}

// (q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale | null, config, options?)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    attention_backward(problem_of(info[10].As<Napi::Object>()), ptr_of(info[0]), ptr_of(info[1]), ptr_of(info[2]),
                       ptr_of(info[3]), reinterpret_cast<const float*>(ptr_of(info[4])), ptr_of(info[5]),
                       ptr_of(info[6]), ptr_of(info[7]), ptr_of(info[8]),
                       reinterpret_cast<float*>(opt_ptr(info[9])), choices_of(argument(info, 11)));
  });
}

// (config, options?) → where the tiled forward and the backward apply the transform (attention_transform_plan)
Napi::Value PlanTransform(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), attention_transform_plan(problem_of(info[0].As<Napi::Object>()), choices_of(argument(info, 1))));
  });
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, Forward, "attentionForward"));
  exports.Set("attentionBackward", Napi::Function::New(env, Backward, "attentionBackward"));
  exports.Set("attentionTransformPlan", Napi::Function::New(env, PlanTransform, "attentionTransformPlan"));
}

}  // namespace andromeda::cuda
