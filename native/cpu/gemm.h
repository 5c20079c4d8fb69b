// GEMM internals exposed for diagnostics (the GEMM itself is declared in kernels.h).
#pragma once

namespace andromeda::cpu {

// Name of the micro-kernel the GEMM uses now for `dtype` (a DType code), e.g. "avx512 12x32".
const char* gemm_kernel_name(int dtype);

}  // namespace andromeda::cpu
