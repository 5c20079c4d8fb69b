// Reads the configuration objects of maskedSoftmax and rotary (built by src/engine/native-engine.ts)
// into the kernels' argument structs; shared by the CPU and CUDA bindings. Buffers are addresses
// (numbers) or null; slopes and inverse frequencies are Float64Arrays that live for the call.
#pragma once
#include <napi.h>

#include <stdexcept>
#include <string>

#include "napi_args.h"
#include "reference_attention.h"

namespace andromeda::napi_args {

inline const double* float64_array_or_null(const Napi::Object& o, const char* name, int64_t expected) {
  const Napi::Value v = o.Get(name);
  if (v.IsNull() || v.IsUndefined()) return nullptr;
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) {
    throw std::invalid_argument(std::string(name) + " must be a Float64Array or null");
  }
  Napi::Float64Array a = v.As<Napi::Float64Array>();
  if (int64_t(a.ElementLength()) != expected) {
    throw std::invalid_argument(std::string(name) + " has " + std::to_string(a.ElementLength()) + " values, expected " + std::to_string(expected));
  }
  return a.Data();
}

inline const int32_t* ints_or_null(const Napi::Object& o, const char* name) {
  return reinterpret_cast<const int32_t*>(opt_ptr(o.Get(name)));
}

inline double number_of(const Napi::Object& o, const char* name) { return o.Get(name).As<Napi::Number>().DoubleValue(); }

// (dtype, scores, out, config)
inline MaskedSoftmaxArgs masked_softmax_args(const Napi::Value& dtype, const Napi::Value& config) {
  const Napi::Object o = config.As<Napi::Object>();
  MaskedSoftmaxArgs a{};
  a.dtype = i32(dtype);
  a.batch = int64_t(number_of(o, "batch"));
  a.heads = int64_t(number_of(o, "heads"));
  a.query_len = int64_t(number_of(o, "queryLen"));
  a.key_len = int64_t(number_of(o, "keyLen"));
  a.causal = o.Get("causal").As<Napi::Boolean>().Value();
  a.query_offset = int64_t(number_of(o, "queryOffset"));
  a.alibi_slopes = float64_array_or_null(o, "alibiSlopes", a.heads);
  a.query_positions = ints_or_null(o, "queryPositions");
  a.key_positions = ints_or_null(o, "keyPositions");
  a.query_segments = ints_or_null(o, "querySegments");
  a.key_segments = ints_or_null(o, "keySegments");
  a.query_stride = int64_t(number_of(o, "queryStride"));
  a.key_stride = int64_t(number_of(o, "keyStride"));
  if (!a.query_segments != !a.key_segments) throw std::invalid_argument("maskedSoftmax: give both segment arrays or neither");
  return a;
}

// (dtype, x, out, config)
inline RotaryArgs rotary_args(const Napi::Value& dtype, const Napi::Value& config) {
  const Napi::Object o = config.As<Napi::Object>();
  RotaryArgs a{};
  a.dtype = i32(dtype);
  a.batch = int64_t(number_of(o, "batch"));
  a.heads = int64_t(number_of(o, "heads"));
  a.length = int64_t(number_of(o, "length"));
  a.head_dim = int64_t(number_of(o, "headDim"));
  a.rotary_dim = int64_t(number_of(o, "rotaryDim"));
  if (a.rotary_dim < 0 || a.rotary_dim % 2 != 0 || a.rotary_dim > a.head_dim) {
    throw std::invalid_argument("rotary: rotaryDim " + std::to_string(a.rotary_dim) + " must be even and at most headDim " + std::to_string(a.head_dim));
  }
  a.inv_freq = float64_array_or_null(o, "invFreq", a.rotary_dim / 2);
  if (a.rotary_dim > 0 && !a.inv_freq) throw std::invalid_argument("rotary: invFreq is missing");
  a.positions = ints_or_null(o, "positions");
  a.position_stride = int64_t(number_of(o, "positionStride"));
  a.position_offset = int64_t(number_of(o, "positionOffset"));
  a.xpos_scale_base = number_of(o, "xposScaleBase");
  a.xpos_anchor = number_of(o, "xposAnchor");
  a.xpos_sign = number_of(o, "xposSign");
  a.xpos_min_distance = number_of(o, "xposMinDistance");
  a.multiplier = number_of(o, "multiplier");
  a.transpose = o.Get("transpose").As<Napi::Boolean>().Value();
  return a;
}

}  // namespace andromeda::napi_args
