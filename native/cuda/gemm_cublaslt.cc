// Matrix products through cuBLASLt, opened with dlopen at first use. Row-major C = op(A)·op(B) is
// computed as the column-major product Cᵀ = op(B)ᵀ·op(A)ᵀ, so A and B swap roles and keep their
// storage. bf16/f16 run on tensor cores with float32 accumulation; float32 uses the exact float32
// compute type (no TF32); float64 uses float64. Descriptors and the heuristic's choice are cached
// per shape, strides and pointer alignment.
//
// ANDROMEDA_CUBLASLT (user setting): the path of libcublasLt.so to open instead of searching the loader's path and
// /usr/local/cuda/lib64 (e.g. a pip-installed nvidia-cublas). It says where the library is, not which kernel runs:
// cuBLASLt's own heuristic picks the algorithm per shape.
#include <dlfcn.h>

#include <array>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cublaslt_api.h"
#include "engine.h"
#include "runtime.h"

namespace andromeda::cuda {
namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;  // what NVIDIA recommends for Hopper

struct Library {
  lt::Api api{};
  lt::Handle handle = nullptr;
  std::string path;
  size_t version = 0;
  char* workspace = nullptr;
};

template <typename Fn>
void bind(void* lib, const char* name, Fn& fn, const std::string& path) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn) throw std::runtime_error("cuBLASLt at " + path + " has no symbol " + name);
}

void check_lt(const Library& lib, lt::Status status, const char* what) {
  if (status == lt::kSuccess) return;
  const char* text = lib.api.get_status_string ? lib.api.get_status_string(status) : "unknown";
  throw std::runtime_error(std::string("cuBLASLt ") + what + " failed: status " + std::to_string(status) + " (" + text + ")");
}

Library& library() {
  static std::mutex mutex;
  static Library* lib = nullptr;
  std::lock_guard<std::mutex> lock(mutex);
  if (lib) return *lib;
  std::vector<std::string> candidates;
  const char* env = std::getenv("ANDROMEDA_CUBLASLT");
  if (env && *env) {
    candidates.push_back(env);
  } else {
    for (const char* name : {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so",
                             "/usr/local/cuda/lib64/libcublasLt.so.13", "/usr/local/cuda/lib64/libcublasLt.so.12",
                             "/usr/local/cuda/lib64/libcublasLt.so"})
      candidates.push_back(name);
  }
  void* handle = nullptr;
  std::string tried, path;
  for (const std::string& c : candidates) {
    handle = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle) { path = c; break; }
    const char* err = dlerror();
    tried += "\n  " + c + ": " + (err ? err : "not found");
  }
  if (!handle) {
    throw std::runtime_error(
        "cuBLASLt (libcublasLt.so) could not be loaded; it is needed for matrix products on the GPU. Tried:" + tried +
        "\nInstall cuBLAS (CUDA toolkit, or pip install nvidia-cublas) or point ANDROMEDA_CUBLASLT at the library, "
        "e.g. ANDROMEDA_CUBLASLT=/usr/local/cuda/lib64/libcublasLt.so.13");
  }
  auto* l = new Library();
  l->path = path;
  lt::Api& a = l->api;
  bind(handle, "cublasLtCreate", a.create, path);
  bind(handle, "cublasLtDestroy", a.destroy, path);
  bind(handle, "cublasLtGetVersion", a.get_version, path);
  bind(handle, "cublasLtGetStatusString", a.get_status_string, path);
  bind(handle, "cublasLtMatmulDescCreate", a.desc_create, path);
  bind(handle, "cublasLtMatmulDescDestroy", a.desc_destroy, path);
  bind(handle, "cublasLtMatmulDescSetAttribute", a.desc_set, path);
  bind(handle, "cublasLtMatrixLayoutCreate", a.layout_create, path);
  bind(handle, "cublasLtMatrixLayoutDestroy", a.layout_destroy, path);
  bind(handle, "cublasLtMatrixLayoutSetAttribute", a.layout_set, path);
  bind(handle, "cublasLtMatmulPreferenceCreate", a.pref_create, path);
  bind(handle, "cublasLtMatmulPreferenceDestroy", a.pref_destroy, path);
  bind(handle, "cublasLtMatmulPreferenceSetAttribute", a.pref_set, path);
  bind(handle, "cublasLtMatmulAlgoGetHeuristic", a.heuristic, path);
  bind(handle, "cublasLtMatmul", a.matmul, path);
  l->version = a.get_version();
  // The first product may come inside a graph capture: the handle's setup records no stream work, and the
  // workspace lives as long as the process, so it never comes from the capture's pool.
  {
    const RelaxedCaptureMode relaxed;
    check_lt(*l, a.create(&l->handle), "cublasLtCreate");
  }
  l->workspace = alloc_persistent(kWorkspaceBytes);
  lib = l;
  return *lib;
}

struct Plan {
  lt::MatmulDesc desc = nullptr;
  lt::MatrixLayout a = nullptr, b = nullptr, c = nullptr;
  lt::MatmulAlgo algo{};
  size_t workspace = 0;
};

// dtype, transposes, sizes, leading dimensions, batch strides, batch, alignments of A/B/C, bias
// (0: none, else the bias pointer's alignment).
using PlanKey = std::array<int64_t, 17>;

uint32_t alignment_of(const void* p) {
  const uintptr_t v = reinterpret_cast<uintptr_t>(p);
  uint32_t a = 256;
  while (a > 1 && (v & (a - 1))) a >>= 1;
  return a;
}

cudaDataType data_type(int dtype) {
  switch (dtype) {
    case 0: return CUDA_R_32F;
    case 1: return CUDA_R_64F;
    case 2: return CUDA_R_16BF;
    case 3: return CUDA_R_16F;
    default: throw std::invalid_argument("matmul: needs a floating dtype (float32, float64, bfloat16, float16)");
  }
}

lt::MatrixLayout make_layout(Library& lib, cudaDataType type, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
                             int64_t stride, const char* name) {
  if (cols == 1 && ld < rows) ld = rows;  // a single column never steps by ld
  if (ld < rows) {
    throw std::invalid_argument(std::string("matmul: leading dimension of ") + name + " (" + std::to_string(ld) +
                                ") is smaller than its stored rows (" + std::to_string(rows) + ")");
  }
  lt::MatrixLayout layout = nullptr;
  check_lt(lib, lib.api.layout_create(&layout, type, uint64_t(rows), uint64_t(cols), ld), "MatrixLayoutCreate");
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    check_lt(lib, lib.api.layout_set(layout, lt::kLayoutBatchCount, &count, sizeof count), "MatrixLayoutSetAttribute");
    check_lt(lib, lib.api.layout_set(layout, lt::kLayoutStridedBatchOffset, &stride, sizeof stride), "MatrixLayoutSetAttribute");
  }
  return layout;
}

void destroy_plan(Library& lib, Plan& p) {
  if (p.a) lib.api.layout_destroy(p.a);
  if (p.b) lib.api.layout_destroy(p.b);
  if (p.c) lib.api.layout_destroy(p.c);
  if (p.desc) lib.api.desc_destroy(p.desc);
  p = Plan{};
}

/** A plan for g, or (with a bias) an empty plan when cuBLASLt has no bias-epilogue algorithm for it. */
Plan make_plan(Library& lib, const GemmArgs& g, uint32_t align_a, uint32_t align_b, uint32_t align_c) {
  const cudaDataType type = data_type(g.dtype);
  const bool f64 = g.dtype == 1;
  Plan p;
  check_lt(lib, lib.api.desc_create(&p.desc, f64 ? lt::kCompute64F : lt::kCompute32F, f64 ? CUDA_R_64F : CUDA_R_32F),
           "MatmulDescCreate");
  // Column-major view: D (n×m) = op(B_stored) · op(A_stored).
  const int32_t op_first = g.trans_b ? lt::kOpT : lt::kOpN;
  const int32_t op_second = g.trans_a ? lt::kOpT : lt::kOpN;
  check_lt(lib, lib.api.desc_set(p.desc, lt::kDescTransA, &op_first, sizeof op_first), "MatmulDescSetAttribute");
  check_lt(lib, lib.api.desc_set(p.desc, lt::kDescTransB, &op_second, sizeof op_second), "MatmulDescSetAttribute");
  if (g.bias) {
    // The bias runs along Lt's rows (our columns, n): one value per output feature.
    const int32_t epilogue = lt::kEpilogueBias;
    check_lt(lib, lib.api.desc_set(p.desc, lt::kDescEpilogue, &epilogue, sizeof epilogue), "MatmulDescSetAttribute");
    check_lt(lib, lib.api.desc_set(p.desc, lt::kDescBiasPointer, &g.bias, sizeof g.bias), "MatmulDescSetAttribute");
  }
  p.a = g.trans_b ? make_layout(lib, type, g.k, g.n, g.ldb, g.batch, g.stride_b, "B")
                  : make_layout(lib, type, g.n, g.k, g.ldb, g.batch, g.stride_b, "B");
  p.b = g.trans_a ? make_layout(lib, type, g.m, g.k, g.lda, g.batch, g.stride_a, "A")
                  : make_layout(lib, type, g.k, g.m, g.lda, g.batch, g.stride_a, "A");
  p.c = make_layout(lib, type, g.n, g.m, g.ldc, g.batch, g.stride_c, "C");

  lt::Preference pref = nullptr;
  check_lt(lib, lib.api.pref_create(&pref), "MatmulPreferenceCreate");
  const uint64_t workspace = kWorkspaceBytes;
  check_lt(lib, lib.api.pref_set(pref, lt::kPrefMaxWorkspaceBytes, &workspace, sizeof workspace), "MatmulPreferenceSetAttribute");
  // The first Lt operand is our B, the second our A.
  check_lt(lib, lib.api.pref_set(pref, lt::kPrefMinAlignmentA, &align_b, sizeof align_b), "MatmulPreferenceSetAttribute");
  check_lt(lib, lib.api.pref_set(pref, lt::kPrefMinAlignmentB, &align_a, sizeof align_a), "MatmulPreferenceSetAttribute");
  check_lt(lib, lib.api.pref_set(pref, lt::kPrefMinAlignmentC, &align_c, sizeof align_c), "MatmulPreferenceSetAttribute");
  check_lt(lib, lib.api.pref_set(pref, lt::kPrefMinAlignmentD, &align_c, sizeof align_c), "MatmulPreferenceSetAttribute");
  lt::HeuristicResult result{};
  int returned = 0;
  const lt::Status status = lib.api.heuristic(lib.handle, p.desc, p.a, p.b, p.c, p.c, pref, 1, &result, &returned);
  lib.api.pref_destroy(pref);
  if (g.bias && (status != lt::kSuccess || returned == 0)) {
    destroy_plan(lib, p);
    return Plan{};
  }
  check_lt(lib, status, "MatmulAlgoGetHeuristic");
  if (returned == 0) {
    throw std::runtime_error("cuBLASLt has no algorithm for this matrix product (m=" + std::to_string(g.m) +
                             " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) + ", batch " + std::to_string(g.batch) + ")");
  }
  p.algo = result.algo;
  p.workspace = result.workspace_size;
  return p;
}

/** C (+ batch) ← broadcast bias rows, for the products whose bias epilogue cuBLASLt cannot run. */
void fill_with_bias(const GemmArgs& g) {
  const int64_t src_strides[3] = {0, 0, 1};
  const int64_t dst_strides[3] = {g.stride_c, g.ldc, 1};
  const int64_t shape[3] = {g.batch, g.m, g.n};
  copy_strided(g.dtype, g.bias, src_strides, g.dtype, g.c, dst_strides, shape, 3);
}

}  // namespace

std::string gemm_library() {
  Library& lib = library();
  return "cuBLASLt " + std::to_string(lib.version) + " (" + lib.path + ")";
}

void gemm(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) throw std::invalid_argument("matmul: k == 0 (the caller fills C instead)");
  if (g.bias && g.beta != 0) throw std::invalid_argument("matmul: a bias needs beta = 0");
  if (gemv_applies(g)) {  // a few rows: streaming the weight beats cuBLASLt's tiles (gemv.cu)
    gemv(g);
    return;
  }
  Library& lib = library();
  const uint32_t align_a = alignment_of(g.a), align_b = alignment_of(g.b), align_c = alignment_of(g.c);
  const PlanKey key{g.dtype, g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch > 1 ? g.stride_a : 0,
                    g.batch > 1 ? g.stride_b : 0, g.batch > 1 ? g.stride_c : 0, g.batch, align_a, align_b, align_c,
                    g.bias ? int64_t(alignment_of(g.bias)) : 0};
  static std::map<PlanKey, Plan> plans;
  auto it = plans.find(key);
  if (it == plans.end()) it = plans.emplace(key, make_plan(lib, g, align_a, align_b, align_c)).first;
  const Plan& p = it->second;
  if (g.bias && !p.desc) {
    // No bias epilogue for this product: the bias is copied into C and accumulated with beta = 1.
    fill_with_bias(g);
    GemmArgs plain = g;
    plain.bias = nullptr;
    plain.beta = 1;
    gemm(plain);
    return;
  }
  if (g.bias) {
    check_lt(lib, lib.api.desc_set(p.desc, lt::kDescBiasPointer, &g.bias, sizeof g.bias), "MatmulDescSetAttribute");
  }
  const float alpha32 = float(g.alpha), beta32 = float(g.beta);
  const bool f64 = g.dtype == 1;
  const void* alpha = f64 ? static_cast<const void*>(&g.alpha) : &alpha32;
  const void* beta = f64 ? static_cast<const void*>(&g.beta) : &beta32;
  check_lt(lib, lib.api.matmul(lib.handle, p.desc, alpha, g.b, p.a, g.a, p.b, beta, g.c, p.c, g.c, p.c, &p.algo,
                               lib.workspace, kWorkspaceBytes, stream()),
           "Matmul");
}

}  // namespace andromeda::cuda
