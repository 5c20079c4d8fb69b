// Reading and checking N-API arguments in the engines' bindings (the generated glue in
// native/abi/generated/kernel_bindings.inc and the hand-written functions beside it): every number is checked
// for its kind (a non-negative safe integer, an enum code, …), every buffer is a (handle, element offset)
// pair resolved through the engine's HandleTable, and every extent is checked against the allocation with
// saturating arithmetic before any kernel runs. `guarded` turns C++ exceptions into JavaScript errors.
#pragma once
#include <napi.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "dtype.h"
#include "handle_table.h"

namespace andromeda::abi {

constexpr double kMaxSafeInteger = 9007199254740991.0;  // 2^53 − 1

inline std::string show(const Napi::Value& v) {
  if (v.IsNumber()) {
    const double d = v.As<Napi::Number>().DoubleValue();
    if (std::isnan(d)) return "NaN";
    if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
    char text[64];
    std::snprintf(text, sizeof text, "%.17g", d);
    return text;
  }
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsString()) return "a string";
  if (v.IsArray()) return "an array";
  if (v.IsFunction()) return "a function";
  return "an object";
}

[[noreturn]] inline void type_error(const char* kernel, const char* name, const char* expected, const Napi::Value& v) {
  throw TypeError(std::string(kernel) + ": " + name + " must be " + expected + ", got " + show(v));
}
[[noreturn]] inline void range_error(const char* kernel, const char* name, const char* expected, const Napi::Value& v) {
  throw RangeError(std::string(kernel) + ": " + name + " must be " + expected + ", got " + show(v));
}

inline void expect_arguments(const Napi::CallbackInfo& info, const char* kernel, size_t count) {
  if (info.Length() != count) {
    throw TypeError(std::string(kernel) + ": expected " + std::to_string(count) + " arguments, got " + std::to_string(info.Length()));
  }
}

inline double number(const Napi::Value& v, const char* kernel, const char* name) {
  if (!v.IsNumber()) type_error(kernel, name, "a number", v);
  return v.As<Napi::Number>().DoubleValue();
}

inline bool is_integer_in(double d, double lo, double hi) { return d >= lo && d <= hi && d == std::floor(d); }

/** A safe integer in [lo, hi]; `expected` describes the range in the error. */
inline int64_t integer(const Napi::Value& v, const char* kernel, const char* name, double lo, double hi, const char* expected) {
  const double d = number(v, kernel, name);
  if (!is_integer_in(d, lo, hi)) range_error(kernel, name, expected, v);
  return int64_t(d);
}
inline int64_t count(const Napi::Value& v, const char* kernel, const char* name, double max = kMaxSafeInteger) {
  const double d = number(v, kernel, name);
  if (is_integer_in(d, 0, max)) return int64_t(d);
  if (max == kMaxSafeInteger) range_error(kernel, name, "a non-negative safe integer", v);
  char expected[64];
  std::snprintf(expected, sizeof expected, "a non-negative integer at most %.0f", max);
  range_error(kernel, name, expected, v);
}
inline int64_t signed_integer(const Napi::Value& v, const char* kernel, const char* name) {
  return integer(v, kernel, name, -kMaxSafeInteger, kMaxSafeInteger, "a safe integer");
}
inline int enumeration(const Napi::Value& v, const char* kernel, const char* name, int codes) {
  const double d = number(v, kernel, name);
  if (!is_integer_in(d, 0, codes - 1)) range_error(kernel, name, ("a code in [0, " + std::to_string(codes) + ")").c_str(), v);
  return int(d);
}
/** A string among `names`, as its index; undefined is the first. */
inline int choice(const Napi::Value& v, const char* kernel, const char* name, std::initializer_list<const char*> names) {
  if (v.IsUndefined()) return 0;
  if (v.IsString()) {
    const std::string value = v.As<Napi::String>().Utf8Value();
    int i = 0;
    for (const char* n : names) {
      if (value == n) return i;
      i++;
    }
  }
  std::string expected;
  for (const char* n : names) expected += (expected.empty() ? "'" : ", '") + std::string(n) + "'";
  throw RangeError(std::string(kernel) + ": " + name + " must be one of " + expected + ", got " + show(v));
}

inline bool flag(const Napi::Value& v, const char* kernel, const char* name) {
  if (!v.IsBoolean()) type_error(kernel, name, "a boolean", v);
  return v.As<Napi::Boolean>().Value();
}

/** An array of safe integers (non-negative unless `allow_negative`), at most 64 of them (tensor ranks). */
inline std::vector<int64_t> int_array(const Napi::Value& v, const char* kernel, const char* name, bool allow_negative) {
  if (!v.IsArray()) type_error(kernel, name, "an array of integers", v);
  const Napi::Array arr = v.As<Napi::Array>();
  if (arr.Length() > 64) throw RangeError(std::string(kernel) + ": " + name + " has " + std::to_string(arr.Length()) + " entries (at most 64)");
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    out[i] = allow_negative ? signed_integer(arr.Get(i), kernel, name) : count(arr.Get(i), kernel, name);
  }
  return out;
}

inline Napi::Object object(const Napi::Value& v, const char* kernel, const char* name) {
  if (!v.IsObject() || v.IsArray()) type_error(kernel, name, "an object", v);
  return v.As<Napi::Object>();
}
inline Napi::Array array(const Napi::Value& v, const char* kernel, const char* name) {
  if (!v.IsArray()) type_error(kernel, name, "an array", v);
  return v.As<Napi::Array>();
}

/** A Float32Array / Float64Array of at least `length` values, or null (nullptr) when `optional`. */
template <typename T>
const T* host_array(const Napi::Value& v, const char* kernel, const char* name, uint64_t length, bool optional) {
  constexpr napi_typedarray_type kind = std::is_same_v<T, float> ? napi_float32_array : napi_float64_array;
  constexpr const char* expected = std::is_same_v<T, float> ? "a Float32Array" : "a Float64Array";
  if (v.IsNull() || v.IsUndefined()) {
    if (optional && length == 0) return nullptr;
    if (optional) return nullptr;
    type_error(kernel, name, expected, v);
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kind) type_error(kernel, name, expected, v);
  const Napi::TypedArray a = v.As<Napi::TypedArray>();
  if (a.ElementLength() < length) {
    throw RangeError(std::string(kernel) + ": " + name + " has " + std::to_string(a.ElementLength()) + " values, needs " + std::to_string(length));
  }
  return reinterpret_cast<const T*>(static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset());
}

/** An element count with saturating arithmetic: anything past 2^64 − 1 stays there (and fails any check). */
struct Count {
  uint64_t v;
  Count(int64_t x) : v(x < 0 ? 0 : uint64_t(x)) {}
  Count(int x) : Count(int64_t(x)) {}
  Count(bool x) : v(x ? 1 : 0) {}
  explicit operator bool() const { return v != 0; }
  friend Count operator*(Count a, Count b) {
    uint64_t r;
    return __builtin_mul_overflow(a.v, b.v, &r) ? Count::max() : Count::raw(r);
  }
  friend Count operator+(Count a, Count b) {
    uint64_t r;
    return __builtin_add_overflow(a.v, b.v, &r) ? Count::max() : Count::raw(r);
  }
  friend Count operator/(Count a, Count b) { return Count::raw(b.v ? a.v / b.v : 0); }
  static Count raw(uint64_t x) { Count c(int64_t(0)); c.v = x; return c; }
  static Count max() { return raw(UINT64_MAX); }
};

/** The element range [lo, hi) a kernel touches relative to a buffer's offset (lo < 0 with negative strides). */
struct Span {
  // Magnitudes in saturating counts; lo is ≤ 0, stored as its magnitude.
  Count below = Count(int64_t(0));
  Count above = Count(int64_t(0));
  static Span elements(Count n) { Span s; s.above = n; return s; }
};

/** Rows of a (batched) matrix: (batch − 1)·batch_stride + (rows − 1)·ld + cols elements, or none when empty. */
inline Span matrix(Count rows, Count cols, Count ld, Count batch_stride, Count batch) {
  if (!rows || !cols || !batch) return Span{};
  return Span::elements(Count::raw(batch.v - 1) * batch_stride + Count::raw(rows.v - 1) * ld + cols);
}

/** The elements a strided view of `shape` reaches (contiguous row-major strides when `strides` is null). */
inline Span strided(const std::vector<int64_t>& shape, const std::vector<int64_t>* strides) {
  if (strides && strides->size() != shape.size()) throw RangeError("strides and shape differ in length");
  Span s;
  for (int64_t n : shape) if (n == 0) return s;
  Count contiguous = Count(int64_t(1));
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t stride = strides ? (*strides)[d] : 0;
    const Count reach = Count::raw(uint64_t(shape[d] - 1));
    if (!strides) {
      s.above = s.above + reach * contiguous;
      contiguous = contiguous * Count(shape[d]);
    } else if (stride >= 0) {
      s.above = s.above + reach * Count(stride);
    } else {
      s.below = s.below + reach * Count::raw(uint64_t(-stride));
    }
  }
  s.above = s.above + Count(int64_t(1));
  return s;
}

/**
 * A strided output may not write one element many times over: its shape has at most as many elements as its
 * strides reach. This bounds a kernel's work by the memory it writes (a zero stride over 2^40 positions is
 * no boundary fault, but an endless call).
 */
inline void check_no_repeated_writes(const std::vector<int64_t>& shape, const Span& span, const char* kernel, const char* name) {
  Count elements = Count(int64_t(1));
  for (int64_t n : shape) elements = elements * Count(n);
  if (elements.v > (span.above + span.below).v) {
    throw RangeError(std::string(kernel) + ": " + name + "'s strides write " + std::to_string(span.above.v + span.below.v) +
                     " elements " + (elements.v == UINT64_MAX ? std::string("2^64 or more") : std::to_string(elements.v)) + " times");
  }
}

/** A buffer argument: the allocation its handle names and the element offset into it (null: none given). */
struct Buffer {
  char* base = nullptr;
  uint64_t bytes = 0;
  uint64_t offset = 0;  // elements
  uint64_t element_bytes = 1;
  // The bytes [first, end) of the allocation the kernel may touch (set by check_span).
  uint64_t first = 0, end = 0;

  bool present() const { return base != nullptr; }
  template <typename T>
  T* as() const {
    return present() ? reinterpret_cast<T*>(base + offset * element_bytes) : nullptr;
  }
  /** Elements the allocation holds from the offset on. */
  uint64_t capacity() const { return bytes / element_bytes > offset ? bytes / element_bytes - offset : 0; }
};

/**
 * Resolves (handle, offset). Handle 0 is "no buffer": allowed only when `optional`. The offset is in
 * elements of `element_bytes`; the extent is checked separately (check_span) once the sizes are known.
 */
inline Buffer buffer(const HandleTable& table, const Napi::Value& handle, const Napi::Value& offset, const char* kernel,
                     const char* name, bool optional) {
  const double h = number(handle, kernel, name);
  if (!offset.IsNumber() || !is_integer_in(offset.As<Napi::Number>().DoubleValue(), 0, kMaxSafeInteger)) {
    count(offset, kernel, (std::string(name) + "Offset").c_str());  // throws, naming the offset
  }
  const int64_t o = int64_t(offset.As<Napi::Number>().DoubleValue());
  Buffer b;
  if (h == 0) {
    if (!optional) throw TypeError(std::string(kernel) + ": " + name + " is required (got handle 0, no buffer)");
    return b;
  }
  const Allocation a = table.lookup(kernel, name, h);
  b.base = a.base;
  b.bytes = a.bytes;
  b.offset = uint64_t(o);
  return b;
}

/**
 * A buffer argument a host-side function only tests for presence: handle 0 gives null, any other number a
 * pointer to a zeroed static block (never a wild address, though the function is not meant to read it).
 */
inline const char* presence(const Napi::Value& handle, const Napi::Value& offset, const char* kernel, const char* name) {
  alignas(64) static const char kPresent[256] = {};
  const double h = number(handle, kernel, name);
  number(offset, kernel, (std::string(name) + "Offset").c_str());
  return h == 0 ? nullptr : kPresent;
}

inline uint64_t element_bytes(int dtype) { return uint64_t(dtype_bytes(DType(dtype))); }
/** Statistics (norm stats, losses, lse) are float64 for float64 data, else float32. */
inline uint64_t stats_bytes(int dtype) { return DType(dtype) == DType::F64 ? 8 : 4; }

/** Fails unless elements [offset − span.below, offset + span.above) of `element_bytes` lie inside the allocation. */
inline void check_span(Buffer& b, const char* kernel, const char* name, uint64_t element_bytes, const Span& span) {
  b.element_bytes = element_bytes;
  if (!b.present()) return;
  if ((Count::raw(b.offset) * Count::raw(element_bytes)).v > b.bytes) {
    throw RangeError(std::string(kernel) + ": " + name + "Offset " + std::to_string(b.offset) + " is past the end of its buffer (" +
                     std::to_string(b.bytes) + " bytes of " + std::to_string(element_bytes) + "-byte elements)");
  }
  if (span.above.v == 0) return;
  if (span.below.v > b.offset) {
    throw RangeError(std::string(kernel) + ": " + name + " reaches " + std::to_string(span.below.v) +
                     " elements before its offset " + std::to_string(b.offset) + " (negative strides past the start)");
  }
  const Count end = Count::raw(b.offset) + span.above;
  const Count end_bytes = end * Count::raw(element_bytes);
  if (end_bytes.v > b.bytes) {
    throw RangeError(std::string(kernel) + ": " + name + " needs elements [" + std::to_string(b.offset) + ", " +
                     (end.v == UINT64_MAX ? std::string("2^64") : std::to_string(end.v)) + ") of " + std::to_string(element_bytes) +
                     " bytes, but its buffer holds " + std::to_string(b.bytes) + " bytes");
  }
  b.first = (b.offset - span.below.v) * element_bytes;
  b.end = end_bytes.v;
}

/**
 * Values checked on the host (ids, targets) must not share bytes with a buffer the kernel writes: the kernel
 * would otherwise read values written after the check.
 */
inline void check_disjoint(const Buffer& read, const char* kernel, const char* read_name, const Buffer& written, const char* written_name) {
  if (!read.present() || !written.present() || read.base != written.base) return;
  if (read.first < written.end && written.first < read.end) {
    throw RangeError(std::string(kernel) + ": " + read_name + " overlaps " + written_name + ", which the kernel writes");
  }
}

/** Host-readable int32 values (ids, targets) must lie in [0, below) unless equal to `except`. */
inline void check_values(const Buffer& b, uint64_t count, const char* kernel, const char* name, Count below, const int64_t* except) {
  const int32_t* v = b.as<const int32_t>();
  if (!v) return;
  for (uint64_t i = 0; i < count; i++) {
    if (except && v[i] == *except) continue;
    if (v[i] < 0 || uint64_t(v[i]) >= below.v) {
      throw RangeError(std::string(kernel) + ": " + name + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) +
                       " is outside [0, " + std::to_string(below.v) + ")");
    }
  }
}

/** Whole rows of `width` elements a buffer holds past its offset (the extent a gather may index into). */
inline Count rows_of(const Buffer& b, Count width) { return Count::raw(width.v ? b.capacity() / width.v : 0); }
inline bool has(const Buffer& b) { return b.present(); }
template <typename T>
inline bool has(const T* p) { return p != nullptr; }

inline void require(bool ok, const char* kernel, const char* message) {
  if (!ok) throw RangeError(std::string(kernel) + ": " + message);
}

/** The bytes [byteOffset, byteOffset + bytes) of the buffer `handle` names in `table`, checked against its size. */
inline char* byte_range(const HandleTable& table, const char* kernel, const Napi::Value& handle, const Napi::Value& byte_offset,
                        uint64_t bytes) {
  const Allocation a = table.lookup(kernel, "handle", number(handle, kernel, "handle"));
  const uint64_t offset = uint64_t(count(byte_offset, kernel, "byteOffset"));
  if (offset > a.bytes || bytes > a.bytes - offset) {
    throw RangeError(std::string(kernel) + ": bytes [" + std::to_string(offset) + ", " + std::to_string(offset + bytes) +
                     ") are outside the buffer's " + std::to_string(a.bytes) + " bytes");
  }
  return a.base + offset;
}

}  // namespace andromeda::abi

namespace andromeda::napi_args {

/**
 * Runs a binding, turning C++ exceptions into JavaScript errors prefixed with `engine` instead of
 * aborting the process: abi::TypeError → TypeError, abi::RangeError and std::range_error (out of memory)
 * → RangeError, anything else → Error. `fn` may return a Napi::Value or nothing (then undefined).
 */
template <typename Fn>
Napi::Value guarded(const Napi::CallbackInfo& info, const char* engine, Fn fn) {
  try {
    if constexpr (std::is_void_v<std::invoke_result_t<Fn>>) {
      fn();
      return info.Env().Undefined();
    } else {
      return fn();
    }
  } catch (const abi::TypeError& e) {
    Napi::TypeError::New(info.Env(), std::string(engine) + ": " + e.what()).ThrowAsJavaScriptException();
  } catch (const abi::RangeError& e) {
    Napi::RangeError::New(info.Env(), std::string(engine) + ": " + e.what()).ThrowAsJavaScriptException();
  } catch (const std::range_error& e) {
    Napi::RangeError::New(info.Env(), std::string(engine) + ": " + e.what()).ThrowAsJavaScriptException();
  } catch (const Napi::Error& e) {
    e.ThrowAsJavaScriptException();
  } catch (const std::exception& e) {
    Napi::Error::New(info.Env(), std::string(engine) + ": " + e.what()).ThrowAsJavaScriptException();
  }
  return info.Env().Undefined();
}

}  // namespace andromeda::napi_args
