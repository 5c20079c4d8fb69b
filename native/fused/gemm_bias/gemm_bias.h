// A matrix product with a bias epilogue: C[b] = alpha · op(A[b]) · op(B[b]) + bias, bias [n] added to every row of
// C (beta must be 0: the bias takes its place in the epilogue's C term, so the sum is rounded once).
// Forms: cpu.cc; the CUDA form is cuBLASLt's bias epilogue, `cuda::gemm` with GemmArgs::bias
// (native/cuda/gemm_cublaslt.cc), which takes this CPU form's route (bias rows, then beta = 1) for the products
// cuBLASLt has no bias epilogue for.
#pragma once
#include "../../cpu/kernels.h"
