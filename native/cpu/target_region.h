// Regions of a source file compiled for an instruction set above the architecture's baseline (x86-64's AVX2+FMA
// and AVX-512), dispatched to at run time (simd.h):
//   ANDROMEDA_TARGET_BEGIN("avx2,fma")  ...functions...  ANDROMEDA_TARGET_END
// GCC takes its push_options/target pragmas; clang ignores those, so there every function of the region gets the
// target attribute through clang's attribute push.
#pragma once

#define ANDROMEDA_PRAGMA(text) _Pragma(#text)
#if defined(__clang__)
#define ANDROMEDA_TARGET_BEGIN(features) \
  ANDROMEDA_PRAGMA(clang attribute push(__attribute__((target(features))), apply_to = function))
#define ANDROMEDA_TARGET_END ANDROMEDA_PRAGMA(clang attribute pop)
#else
#define ANDROMEDA_TARGET_BEGIN(features) ANDROMEDA_PRAGMA(GCC push_options) ANDROMEDA_PRAGMA(GCC target(features))
#define ANDROMEDA_TARGET_END ANDROMEDA_PRAGMA(GCC pop_options)
#endif
