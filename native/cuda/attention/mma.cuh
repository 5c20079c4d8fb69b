// Tensor-core and asynchronous-copy primitives for sm_80+ (PTX): mma.sync m16n8k16 on bf16 with fp32
// accumulators, ldmatrix (plain and transposed), cp.async with zero fill, and fragment packing.
//
// Fragment layouts of mma.m16n8k16 (g = lane / 4, t = lane % 4):
//   A 16×16 (4 regs, 2 bf16 each): a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   B 16×8  (2 regs):              b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
//   C 16×8  (4 floats):            c0,c1 (g, 2t..2t+1), c2,c3 (g+8, 2t..2t+1)
// Two C tiles side by side hold exactly an A fragment's elements, so P = softmax(S) feeds the next
// product from registers.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace andromeda::cuda::attention {

__device__ __forceinline__ uint32_t smem_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(smem)));
}

__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_address(smem)));
}

/** 16-byte asynchronous copy global → shared; with `valid` false the destination is zero-filled. */
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_address(smem)), "l"(gmem),
               "r"(valid ? 16 : 0));
}
/** 4-byte asynchronous copy global → shared (positions, statistics); zero-filled when not `valid`. */
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, bool valid) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_address(smem)), "l"(gmem),
               "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int Pending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(Pending));
}

/** 2^x on the special-function unit (about 2 ulp); 2^−∞ = 0. */
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// ---- Fragment loads from a row-major shared tile with row stride `ld` elements ----

/** A fragment: rows [r0, r0+16) × columns [c0, c0+16) of a [row][col] tile. */
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const __nv_bfloat16* tile, int ld, int r0, int c0, int lane) {
  const int m = lane >> 3;
  ldmatrix_x4(a, tile + (r0 + (lane & 7) + (m & 1) * 8) * ld + c0 + (m >> 1) * 8);
}

/**
 * B fragments for two adjacent n8 tiles when B[k][n] = tile[n][k] (e.g. Kᵀ from K stored [key][d]):
 * n rows [n0, n0+16), k columns [k0, k0+16). b[0], b[1] serve n tile 0; b[2], b[3] n tile 1.
 */
__device__ __forceinline__ void load_b_rows_n(uint32_t (&b)[4], const __nv_bfloat16* tile, int ld, int n0, int k0, int lane) {
  const int m = lane >> 3;
  ldmatrix_x4(b, tile + (n0 + (lane & 7) + (m >> 1) * 8) * ld + k0 + (m & 1) * 8);
}

/**
 * B fragments for two adjacent n8 tiles when B[k][n] = tile[k][n] (e.g. V stored [key][d] in P·V):
 * k rows [k0, k0+16), n columns [n0, n0+16). b[0], b[1] serve n tile 0; b[2], b[3] n tile 1.
 */
__device__ __forceinline__ void load_b_rows_k(uint32_t (&b)[4], const __nv_bfloat16* tile, int ld, int k0, int n0, int lane) {
  const int m = lane >> 3;
  ldmatrix_x4_trans(b, tile + (k0 + (lane & 7) + (m & 1) * 8) * ld + n0 + (m >> 1) * 8);
}

/** A fragment (16 rows × k16 block kb) from two adjacent C tiles of fp32 values, rounded to bf16. */
__device__ __forceinline__ void c_to_a(uint32_t (&a)[4], const float (&c0)[4], const float (&c1)[4]) {
  a[0] = pack_bf16(c0[0], c0[1]);
  a[1] = pack_bf16(c0[2], c0[3]);
  a[2] = pack_bf16(c1[0], c1[1]);
  a[3] = pack_bf16(c1[2], c1[3]);
}

}  // namespace andromeda::cuda::attention
