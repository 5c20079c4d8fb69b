// N-API functions of the fused attention (attentionForward, attentionBackward, attentionDecode), added
// to the CUDA engine's exports by register_attention. The configuration object has the fields of
// CudaAttentionConfig in src/engine/cuda-attention.ts; buffers are device addresses (doubles) or null.
#include <napi.h>

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

// (q, k, v, out, lse, config, path) with path 0 auto, 1 tiled, 2 decode
Napi::Value Forward(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    const AttentionPath path = info.Length() > 6 && info[6].IsNumber() ? AttentionPath(info[6].As<Napi::Number>().Int32Value())
                                                                       : AttentionPath::Auto;
    attention_forward(problem_of(info[5].As<Napi::Object>()), ptr_of(info[0]), ptr_of(info[1]), ptr_of(info[2]),
                      ptr_of(info[3]), reinterpret_cast<float*>(ptr_of(info[4])), path);
  });
}

// (q, k, v, out, lse, gradOut, gradQ, gradK, gradV, gradKeyScale | null, config)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&] {
    attention_backward(problem_of(info[10].As<Napi::Object>()), ptr_of(info[0]), ptr_of(info[1]), ptr_of(info[2]),
                       ptr_of(info[3]), reinterpret_cast<const float*>(ptr_of(info[4])), ptr_of(info[5]),
                       ptr_of(info[6]), ptr_of(info[7]), ptr_of(info[8]),
                       reinterpret_cast<float*>(opt_ptr(info[9])));
  });
}

const char* const kTransformNames[] = {"auto", "kernel", "prepass"};

// ([mode: 'auto' | 'kernel' | 'prepass']) → the mode before the call (tests and benchmarks compare both paths)
Napi::Value Transform(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&]() -> Napi::Value {
    if (info.Length() == 0 || info[0].IsUndefined()) return Napi::String::New(info.Env(), kTransformNames[int(attention_transform())]);
    const std::string name = info[0].As<Napi::String>().Utf8Value();
    for (int m = 0; m < 3; m++) {
      if (name == kTransformNames[m]) {
        return Napi::String::New(info.Env(), kTransformNames[int(set_attention_transform(AttentionTransform(m)))]);
      }
    }
    throw std::invalid_argument("attention transform '" + name + "': expected auto, kernel or prepass");
  });
}

// (config) → 'none' | 'kernel' | 'prepass': where the tiled forward and the backward apply the transform
Napi::Value PlanTransform(const Napi::CallbackInfo& info) {
  return guarded(info, "cuda engine", [&]() -> Napi::Value {
    return Napi::String::New(info.Env(), attention_transform_plan(problem_of(info[0].As<Napi::Object>())));
  });
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, Forward, "attentionForward"));
  exports.Set("attentionBackward", Napi::Function::New(env, Backward, "attentionBackward"));
  exports.Set("attentionTransform", Napi::Function::New(env, Transform, "attentionTransform"));
  exports.Set("attentionTransformPlan", Napi::Function::New(env, PlanTransform, "attentionTransformPlan"));
}

}  // namespace andromeda::cuda
