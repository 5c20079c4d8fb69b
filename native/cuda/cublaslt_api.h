// The slice of the cuBLASLt API the engine uses, declared here because the build machines have no
// cuBLAS headers: the library is opened with dlopen at run time. Values follow cublasLt.h and
// cublas_api.h (stable across cuBLAS 11–13).
#pragma once
#include <cuda_runtime_api.h>  // cudaStream_t
#include <library_types.h>     // cudaDataType

#include <cstddef>
#include <cstdint>

namespace andromeda::cuda::lt {

using Status = int;  // cublasStatus_t; 0 is success
constexpr Status kSuccess = 0;

using Handle = struct cublasLtContext*;
using MatmulDesc = void*;
using MatrixLayout = void*;
using Preference = void*;

struct MatmulAlgo {
  uint64_t data[8];
};

struct HeuristicResult {
  MatmulAlgo algo;
  size_t workspace_size;
  Status state;
  float waves_count;
  int reserved[4];
};

// cublasComputeType_t
constexpr int kCompute32F = 68;
constexpr int kCompute64F = 70;
// cublasOperation_t
constexpr int kOpN = 0, kOpT = 1;
// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3, kDescTransB = 4, kDescEpilogue = 7, kDescBiasPointer = 8;
// cublasLtEpilogue_t
constexpr int32_t kEpilogueBias = 4;
// cublasLtMatrixLayoutAttribute_t
constexpr int kLayoutBatchCount = 5, kLayoutStridedBatchOffset = 6;
// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;
constexpr int kPrefMinAlignmentA = 5, kPrefMinAlignmentB = 6, kPrefMinAlignmentC = 7, kPrefMinAlignmentD = 8;

struct Api {
  Status (*create)(Handle*);
  Status (*destroy)(Handle);
  size_t (*get_version)();
  const char* (*get_status_string)(Status);
  Status (*desc_create)(MatmulDesc*, int compute_type, cudaDataType scale_type);
  Status (*desc_destroy)(MatmulDesc);
  Status (*desc_set)(MatmulDesc, int attr, const void* buf, size_t size);
  Status (*layout_create)(MatrixLayout*, cudaDataType type, uint64_t rows, uint64_t cols, int64_t ld);
  Status (*layout_destroy)(MatrixLayout);
  Status (*layout_set)(MatrixLayout, int attr, const void* buf, size_t size);
  Status (*pref_create)(Preference*);
  Status (*pref_destroy)(Preference);
  Status (*pref_set)(Preference, int attr, const void* buf, size_t size);
  Status (*heuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c, MatrixLayout d,
                      Preference, int requested, HeuristicResult* results, int* returned);
  Status (*matmul)(Handle, MatmulDesc, const void* alpha, const void* a, MatrixLayout, const void* b, MatrixLayout,
                   const void* beta, const void* c, MatrixLayout, void* d, MatrixLayout, const MatmulAlgo* algo,
                   void* workspace, size_t workspace_bytes, cudaStream_t stream);
};

}  // namespace andromeda::cuda::lt
