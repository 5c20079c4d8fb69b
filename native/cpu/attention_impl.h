// The fused attention kernels (FlashAttention-2 style), written once over GCC vector extensions and
// compiled by attention.cc once per instruction set. attention.cc includes this file inside
// namespace andromeda::cpu::attn_<isa>, under that instruction set's target pragma, with
//   ATTN_VBYTES  vector width in bytes (16: SSE2 or NEON, 32: AVX2+FMA, 64: AVX-512)
//   ATTN_RM      rows per micro-kernel block
// No standard-library template is instantiated here (an instantiation could be emitted with this
// target's instructions and then shared with code that runs on any CPU): only C math functions,
// builtins, dtype.h's plain inline functions and the types defined below.
//
// Layout and notation. Per (batch b, head h) with KV head g = h mod kvHeads (x-transformers' grouping):
//   q' = scale · xq ⊙ R(p_q) q                  (R: rotate-half on the first rotaryDim features)
//   k' = xk ⊙ R(p_k) (k ⊙ keyScale[h])          (keyScale optional)
//   s  = q'·k' − slope_h·|p_q − p_k|, masked (causal by index: key j visible to query i when
//        j ≤ i + queryOffset; segments: same id);  P = softmax(s);  out = P v
// xPos is relative: per query sub-tile with reference position p0, xq = ζ^((p_q − p0)/B) and
// xk = ζ^((p0 − p_k)/B), so each product carries exactly ζ^((p_q − p_k)/B) and nothing overflows.
// Query tiles are BQ rows (split into sub-tiles when their positions spread too far for xPos), key
// tiles BK keys. Score tiles are kept transposed, Sᵀ = K'·Q̂ᵀ (keys × queries), so per-query softmax
// statistics are vectors across columns and keys need no transposition.
// Forward: one task per (batch, head, query tile), online softmax (running max and sum), lse saved.
// Backward (FlashAttention-2): D_i = rowsum(dO ⊙ O); per (batch, KV head) group the key tiles are
// dealt to a fixed number of slots (not one per thread), one task per (group, slot) covering the heads
// of the group, recomputing P = exp(S − lse); dK/dV of a key tile are private to its task (gradients
// of the group's heads summed there), dQ goes to the slot's accumulator and the slots are summed in
// order afterwards, so the result does not depend on the thread count or on scheduling; the chain
// rule runs back through xPos, rotary (Rᵀ) and the key scale.
// Tasks run on the engine's pool (parallel.h: parallel_tasks, which instantiates no standard-library
// code here); per-thread scratch is indexed by the pool's worker index.
// Micro-kernel: C (+)= A·B with RM × 2 vectors of accumulators (gemm_tile), A possibly transposed.

static constexpr int kVBytes = ATTN_VBYTES;
static constexpr int kRM = ATTN_RM;

template <typename C> struct Vec;
template <> struct Vec<float> {
  typedef float V __attribute__((vector_size(kVBytes)));
  typedef float VU __attribute__((vector_size(kVBytes), aligned(4), may_alias));
  typedef int32_t I __attribute__((vector_size(kVBytes)));
  static constexpr int W = kVBytes / 4;
};
template <> struct Vec<double> {
  typedef double V __attribute__((vector_size(kVBytes)));
  typedef double VU __attribute__((vector_size(kVBytes), aligned(8), may_alias));
  typedef int64_t I __attribute__((vector_size(kVBytes)));
  static constexpr int W = kVBytes / 8;
};

template <typename C> inline typename Vec<C>::V vload(const C* p) {
  return *reinterpret_cast<const typename Vec<C>::VU*>(p);
}
template <typename C> inline void vstore(C* p, typename Vec<C>::V v) {
  *reinterpret_cast<typename Vec<C>::VU*>(p) = v;
}
template <typename C> inline typename Vec<C>::V vset(C s) {
#if defined(__clang__)
  typename Vec<C>::V v;
  for (int i = 0; i < Vec<C>::W; i++) v[i] = s;
  return v;
#else
  const typename Vec<C>::V v = {s};
  return __builtin_shuffle(v, typename Vec<C>::I{});  // one broadcast instruction
#endif
}
// exp on a vector: Cody–Waite reduction x = n·ln2 + r, a polynomial for e^r, 2^n built in the
// exponent bits. float: Cephes' degree-6 polynomial (about 1 ulp); double: Taylor to r^13 (|r| ≤ ln2/2,
// truncation < 1e-17). Results below the smallest normal become 0 (no subnormals); NaN stays NaN.
inline Vec<float>::V vexp(Vec<float>::V x) {
  typedef Vec<float>::V V;
  typedef Vec<float>::I I;
  const V lo = vset(-87.3f), hi = vset(88.3f), magic = vset(12582912.0f);  // 1.5·2^23
  V xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const V t = xc * 1.44269504088896341f + magic;
  const V n = t - magic;
  V r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  V p = vset(1.9875691500e-4f);
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const I e = ((I)t - (I)magic + 127) << 23;
  V y = p * (V)e;
  y = x < lo ? vset(0.0f) : y;
  y = x > hi ? vset(__builtin_inff()) : y;
  return y;
}

inline Vec<double>::V vexp(Vec<double>::V x) {
  typedef Vec<double>::V V;
  typedef Vec<double>::I I;
  const V lo = vset(-708.0), hi = vset(709.0), magic = vset(6755399441055744.0);  // 1.5·2^52
  V xc = x < lo ? lo : x;
  xc = xc > hi ? hi : xc;
  const V t = xc * 1.4426950408889634074 + magic;
  const V n = t - magic;
  V r = xc - n * 6.93147180369123816490e-01;
  r = r - n * 1.90821492927058770002e-10;
  V p = vset(1.0 / 6227020800.0);        // 1/13!
  p = p * r + 1.0 / 479001600.0;          // 1/12!
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  const I e = ((I)t - (I)magic + 1023) << 52;
  V y = p * (V)e;
  y = x < lo ? vset(0.0) : y;
  y = x > hi ? vset(__builtin_inf()) : y;
  return y;
}

inline float sexp(float x) { return ::expf(x); }
inline double sexp(double x) { return ::exp(x); }

// Storage ↔ compute conversions (bf16 computes in float).
inline float ld(const float* p) { return *p; }
inline double ld(const double* p) { return *p; }
inline float ld(const bf16* p) { return bf16_to_float(p->bits); }
inline void st(float* p, float v) { *p = v; }
inline void st(double* p, double v) { *p = v; }
inline void st(bf16* p, float v) { p->bits = float_to_bf16(v); }

// C[M×N] (+)= A[M×K] · B[K×N]. A element (i, k) at A[i·rs + k·cs] (rs = lda, cs = 1 for A; rs = 1,
// cs = lda for Aᵀ); B row-major with leading dimension ldb; C leading dimension ldc. N must be a
// multiple of 2W (the column block); any M and K. Register-blocked RMx rows × 2 vectors.
template <typename C, int RMx>
inline void mk_rows(int64_t K, const C* A, int64_t rs, int64_t cs, const C* Bm, int64_t ldb, C* Cm, int64_t ldc,
                    int64_t N, bool acc) {
  typedef typename Vec<C>::V V;
  constexpr int W = Vec<C>::W;
  for (int64_t j = 0; j < N; j += 2 * W) {
    V c0[RMx], c1[RMx];
#pragma GCC unroll 16
    for (int r = 0; r < RMx; r++) {
      if (acc) {
        c0[r] = vload(Cm + r * ldc + j);
        c1[r] = vload(Cm + r * ldc + j + W);
      } else {
        c0[r] = V{};
        c1[r] = V{};
      }
    }
    const C* ap = A;
    const C* bp = Bm + j;
    for (int64_t kk = 0; kk < K; kk++, ap += cs, bp += ldb) {
      const V b0 = vload(bp), b1 = vload(bp + W);
#pragma GCC unroll 16
      for (int r = 0; r < RMx; r++) {
        const V av = vset(ap[r * rs]);
        c0[r] += av * b0;
        c1[r] += av * b1;
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < RMx; r++) {
      vstore(Cm + r * ldc + j, c0[r]);
      vstore(Cm + r * ldc + j + W, c1[r]);
    }
  }
}

template <typename C>
inline void gemm_tile(int64_t M, int64_t N, int64_t K, const C* A, int64_t rs, int64_t cs, const C* Bm, int64_t ldb,
                      C* Cm, int64_t ldc, bool acc) {
  int64_t i = 0;
  for (; i + kRM <= M; i += kRM) mk_rows<C, kRM>(K, A + i * rs, rs, cs, Bm, ldb, Cm + i * ldc, ldc, N, acc);
  for (; i < M; i++) mk_rows<C, 1>(K, A + i * rs, rs, cs, Bm, ldb, Cm + i * ldc, ldc, N, acc);
}

inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

// A query sub-tile: rows [i0, i1) of one batch item, its xPos reference p0 and position/segment ranges.
struct Sub {
  int64_t i0, i1, p0, pmin, pmax;
  int32_t smin, smax;
};
struct KTile {
  int32_t smin, smax;
  int64_t pmin;   // smallest key position: the tile's xPos reference
  bool regular;   // positions spread little enough for the per-key xPos table (kx)
};

template <typename T, typename C>
struct Attn {
  typedef typename Vec<C>::V V;
  static constexpr int W = Vec<C>::W;
  static constexpr int NB = 2 * W;  // micro-kernel column block
  static constexpr C kNegInf = -C(__builtin_inf());

  const AttentionArgs& a;
  int64_t B, H, KVH, G, NQ, NK, D, Dp, R, H2, BQ, BK, NQT, NKT, QPB, KPB;
  bool xpos, alibi, causal, seg;
  // ALiBi folded into the score product: true when every visible key has p_k ≤ p_q (causal with
  // positions growing along each document), so −slope·|p_q − p_k| = −slope·(p_q − r_q) + slope·(p_k − r_k)
  // + slope·(r_k − r_q): two extra features, Q̂ᵀ rows D, D + 1 = (−slope·(p_q − r_q), slope) and K'
  // columns D, D + 1 = (1, p_k − r_k), and a per-pair constant added in the softmax. r_q, r_k: first
  // position of the query / key tile.
  bool alibi_sep = false;
  int64_t KS, DQ;  // row stride of key tiles (room for the two features), rows of Q̂ᵀ
  C scale;
  C xk_clamp;
  Buf lnz_b, slopes_b, ks_b, qcos_b, qsin_b, kcos_b, ksin_b, qx_b, subs_b, suboff_b, ktiles_b, kx_b;
  C* kx = nullptr;  // xPos: ζ^((pmin of the key's tile − p_k)/B) per key and frequency [KPB, NK, H2]
  C *lnz = nullptr, *slopes = nullptr, *ks = nullptr, *qcos = nullptr, *qsin = nullptr, *kcos = nullptr,
    *ksin = nullptr, *qx = nullptr;
  Sub* subs = nullptr;
  int64_t* suboff = nullptr;
  KTile* ktiles = nullptr;

  explicit Attn(const AttentionArgs& args) : a(args) {
    B = a.batch; H = a.heads; KVH = a.kv_heads; G = H / KVH;
    NQ = a.query_len; NK = a.key_len; D = a.head_dim;
    Dp = (D + NB - 1) / NB * NB;
    KS = (D + 2 + NB - 1) / NB * NB;
    R = a.rotary_dim; H2 = R / 2;
    // 64 × 64 tiles for short sequences (less causal waste on the diagonal, more tasks); 128 × 128
    // for long ones (halves the per-pair key preparation: rotary, xPos factors, transposes).
    // Both multiples of every column block (2W ≤ 32).
    BQ = BK = (NQ >= 1024 && NK >= 1024 && D <= 128) ? 128 : 64;
    NQT = (NQ + BQ - 1) / BQ;
    NKT = (NK + BK - 1) / BK;
    QPB = a.query_positions ? B : 1;
    KPB = a.key_positions ? B : 1;
    xpos = a.xpos_scale_base != 0 && R > 0;
    causal = a.causal;
    seg = a.query_segments != nullptr;
    scale = C(a.scale);
    xk_clamp = sizeof(C) == 4 ? C(60) : C(600);
    build();
    DQ = alibi_sep ? D + 2 : D;
  }

  // Whether every key visible to a query (causal by index, same segment) has p_k ≤ p_q.
  bool positions_ordered() const {
    if (!causal) return false;
    if (!a.query_positions && !a.key_positions) return true;  // p_k = j ≤ i + offset = p_q
    if (!a.query_positions || !a.key_positions) return false;
    for (int64_t b = 0; b < B; b++) {
      for (int64_t i = 0; i < NQ; i++) {  // query i is key i + offset (self-attention over a packed row)
        const int64_t j = i + a.query_offset;
        if (j < 0 || j >= NK || qpos(b, i) != kpos(b, j) || qseg(b, i) != kseg(b, j)) return false;
      }
      for (int64_t j = 1; j < NK; j++) {  // one run per document, positions non-decreasing inside it
        if (kseg(b, j) < kseg(b, j - 1)) return false;
        if (kseg(b, j) == kseg(b, j - 1) && kpos(b, j) < kpos(b, j - 1)) return false;
      }
    }
    return true;
  }

  // body(row) for every row in [0, n), in contiguous chunks on the pool.
  template <typename F>
  static void for_rows(int64_t n, F body) {
    const int64_t chunks = imin(n, int64_t(thread_count()) * 4);
    parallel_tasks(chunks, [&](int64_t c, int) {
      for (int64_t row = n * c / chunks; row < n * (c + 1) / chunks; row++) body(row);
    });
  }

  int64_t qpos(int64_t b, int64_t i) const {
    return a.query_positions ? int64_t(a.query_positions[b * NQ + i]) : a.query_offset + i;
  }
  int64_t kpos(int64_t b, int64_t j) const { return a.key_positions ? int64_t(a.key_positions[b * NK + j]) : j; }
  int32_t qseg(int64_t b, int64_t i) const { return seg ? a.query_segments[b * NQ + i] : 0; }
  int32_t kseg(int64_t b, int64_t j) const { return seg ? a.key_segments[b * NK + j] : 0; }

  // ---- precomputation: rotary tables, xPos factors, query sub-tiles, key-tile ranges ----
  void build() {
    slopes_b.reset(sizeof(C) * size_t(H));
    slopes = static_cast<C*>(slopes_b.get());
    alibi = false;
    for (int64_t h = 0; h < H; h++) {
      slopes[h] = a.alibi_slopes ? C(a.alibi_slopes[h]) : C(0);
      if (slopes[h] != 0) alibi = true;
    }
    if (a.key_scale) {
      ks_b.reset(sizeof(C) * size_t(H * D));
      ks = static_cast<C*>(ks_b.get());
      for (int64_t i = 0; i < H * D; i++) ks[i] = C(load_any(a.key_scale_dtype, a.key_scale, i));
    }
    if (H2 > 0) {
      lnz_b.reset(sizeof(C) * size_t(H2));
      lnz = static_cast<C*>(lnz_b.get());
      for (int64_t i = 0; i < H2; i++) {
        const double zeta = (2.0 * double(i) + 0.4 * double(R)) / (1.4 * double(R));
        lnz[i] = xpos ? C(::log(zeta) / a.xpos_scale_base) : C(0);
      }
      qcos_b.reset(sizeof(C) * size_t(QPB * NQ * H2), false);
      qsin_b.reset(sizeof(C) * size_t(QPB * NQ * H2), false);
      kcos_b.reset(sizeof(C) * size_t(KPB * NK * H2), false);
      ksin_b.reset(sizeof(C) * size_t(KPB * NK * H2), false);
      qcos = static_cast<C*>(qcos_b.get()); qsin = static_cast<C*>(qsin_b.get());
      kcos = static_cast<C*>(kcos_b.get()); ksin = static_cast<C*>(ksin_b.get());
      const int64_t nq_rows = QPB * NQ, nk_rows = KPB * NK;
      for_rows(nq_rows + nk_rows, [&](int64_t row) {
        const bool isq = row < nq_rows;
        const int64_t rr = isq ? row : row - nq_rows;
        const int64_t n = isq ? NQ : NK;
        const int64_t pos = isq ? qpos(rr / n, rr % n) : kpos(rr / n, rr % n);
        C* co = (isq ? qcos : kcos) + rr * H2;
        C* si = (isq ? qsin : ksin) + rr * H2;
        for (int64_t i = 0; i < H2; i++) {
          // float32 engines form the angle as a float32 product (as PyTorch does), float64 in double.
          const double ang = sizeof(C) == 4 ? double(float(pos) * a.rotary_inv_freq[i])
                                            : double(pos) * double(a.rotary_inv_freq[i]);
          co[i] = C(::cos(ang));
          si[i] = C(::sin(ang));
        }
      });
    }
    // Query sub-tiles. Without xPos a sub-tile is the query tile. With xPos a tile whose positions
    // spread more than `limit` (so that ζ^(spread/B) stays far inside the floating range) is halved.
    int64_t limit = int64_t(1) << 40;
    if (xpos) {
      const double worst = ::fabs(double(lnz[0]));  // ζ is smallest at i = 0
      limit = worst > 0 ? imax(1, int64_t((sizeof(C) == 4 ? 30.0 : 300.0) / worst)) : limit;
    }
    subs_b.reset(sizeof(Sub) * size_t(B * NQ + 1), false);
    suboff_b.reset(sizeof(int64_t) * size_t(B * NQT + 1), false);
    subs = static_cast<Sub*>(subs_b.get());
    suboff = static_cast<int64_t*>(suboff_b.get());
    int64_t count = 0;
    for (int64_t b = 0; b < B; b++) {
      for (int64_t t = 0; t < NQT; t++) {
        suboff[b * NQT + t] = count;
        split(b, t * BQ, imin(NQ, (t + 1) * BQ), limit, count);
      }
    }
    suboff[B * NQT] = count;
    if (xpos) {
      qx_b.reset(sizeof(C) * size_t(QPB * NQ * H2), false);
      qx = static_cast<C*>(qx_b.get());
      for_rows(QPB * NQT, [&](int64_t bt) {
        const int64_t b = bt / NQT, t = bt % NQT;
        for (int64_t s = suboff[b * NQT + t]; s < suboff[b * NQT + t + 1]; s++) {
          for (int64_t i = subs[s].i0; i < subs[s].i1; i++) {
            const double d = double(qpos(b, i) - subs[s].p0);
            for (int64_t c = 0; c < H2; c++) qx[(b * NQ + i) * H2 + c] = C(::exp(double(lnz[c]) * d));
          }
        }
      });
    }
    alibi_sep = alibi && positions_ordered();
    ktiles_b.reset(sizeof(KTile) * size_t(B * NKT), false);
    ktiles = static_cast<KTile*>(ktiles_b.get());
    for (int64_t b = 0; b < B; b++) {
      for (int64_t t = 0; t < NKT; t++) {
        KTile kt{INT32_MAX, INT32_MIN, int64_t(1) << 62, true};
        int64_t pmax = -(int64_t(1) << 62);
        for (int64_t j = t * BK; j < imin(NK, (t + 1) * BK); j++) {
          const int32_t s = kseg(b, j);
          kt.pmin = imin(kt.pmin, kpos(b, j));
          pmax = imax(pmax, kpos(b, j));
          kt.smin = s < kt.smin ? s : kt.smin; kt.smax = s > kt.smax ? s : kt.smax;
        }
        kt.regular = pmax - kt.pmin <= limit;
        ktiles[b * NKT + t] = kt;
      }
    }
    if (xpos) {
      kx_b.reset(sizeof(C) * size_t(KPB * NK * H2), false);
      kx = static_cast<C*>(kx_b.get());
      for_rows(KPB * NK, [&](int64_t row) {
        const int64_t b = row / NK, j = row % NK;
        const double d = double(ktiles[b * NKT + j / BK].pmin - kpos(b, j));
        for (int64_t c = 0; c < H2; c++) kx[row * H2 + c] = C(::exp(double(lnz[c]) * d));
      });
    }
  }

  void split(int64_t b, int64_t i0, int64_t i1, int64_t limit, int64_t& count) {
    Sub s{i0, i1, 0, int64_t(1) << 62, -(int64_t(1) << 62), INT32_MAX, INT32_MIN};
    for (int64_t i = i0; i < i1; i++) {
      const int64_t p = qpos(b, i);
      const int32_t g = qseg(b, i);
      s.pmin = imin(s.pmin, p); s.pmax = imax(s.pmax, p);
      s.smin = g < s.smin ? g : s.smin; s.smax = g > s.smax ? g : s.smax;
    }
    if (s.pmax - s.pmin > limit && i1 - i0 > 1) {
      const int64_t mid = i0 + (i1 - i0) / 2;
      split(b, i0, mid, limit, count);
      split(b, mid, i1, limit, count);
      return;
    }
    s.p0 = s.pmin;
    subs[count++] = s;
  }

  static double load_any(int dtype, const char* p, int64_t i) {
    switch (DType(dtype)) {
      case DType::F64: return reinterpret_cast<const double*>(p)[i];
      case DType::BF16: return bf16_to_float(reinterpret_cast<const uint16_t*>(p)[i]);
      default: return reinterpret_cast<const float*>(p)[i];
    }
  }
  static void store_any(int dtype, char* p, int64_t i, double v) {
    switch (DType(dtype)) {
      case DType::F64: reinterpret_cast<double*>(p)[i] = v; break;
      case DType::BF16: reinterpret_cast<uint16_t*>(p)[i] = float_to_bf16(float(v)); break;
      default: reinterpret_cast<float*>(p)[i] = float(v); break;
    }
  }

  // Sub-tile × key tile [j0, j0 + nkv): 0 every score masked (skip), 1 some masked, 2 none masked.
  // The causal mask compares indices: key j is visible to query i when j ≤ i + queryOffset.
  int classify(const Sub& s, const KTile& kt, int64_t j0, int64_t nkv) const {
    if (causal && j0 > s.i1 - 1 + a.query_offset) return 0;
    if (seg && (kt.smax < s.smin || kt.smin > s.smax)) return 0;
    const bool full = (!causal || j0 + nkv - 1 <= s.i0 + a.query_offset) &&
                      (!seg || (s.smin == s.smax && kt.smin == kt.smax && s.smin == kt.smin)) && nkv == BK;
    return full ? 2 : 1;
  }

  // q' rows [i0, i0 + mq) of (b, h): rotated, xPos-scaled, times `scale`; columns ≥ D untouched.
  void prep_q(const T* q, int64_t b, int64_t h, int64_t i0, int64_t mq, C* Qh) const {
    const int64_t tb = QPB == 1 ? 0 : b;
    for (int64_t r = 0; r < mq; r++) {
      const int64_t i = i0 + r;
      const T* x = q + ((b * H + h) * NQ + i) * D;
      C* y = Qh + r * Dp;
      if (H2 > 0) {
        const C* co = qcos + (tb * NQ + i) * H2;
        const C* si = qsin + (tb * NQ + i) * H2;
        const C* xf = xpos ? qx + (tb * NQ + i) * H2 : nullptr;
        for (int64_t c = 0; c < H2; c++) {
          const C x1 = ld(x + c), x2 = ld(x + c + H2);
          C y1 = x1 * co[c] - x2 * si[c];
          C y2 = x2 * co[c] + x1 * si[c];
          const C f = xf ? xf[c] * scale : scale;
          y[c] = y1 * f;
          y[c + H2] = y2 * f;
        }
      }
      for (int64_t d = R; d < D; d++) y[d] = ld(x + d) * scale;
    }
  }

  // R(p_k)(k ⊙ keyScale[h]) for key j of (b, g): D values into y.
  void key_row(const T* k, int64_t b, int64_t g, int64_t h, int64_t j, C* y) const {
    const T* x = k + ((b * KVH + g) * NK + j) * D;
    const C* kh = ks ? ks + h * D : nullptr;
    if (H2 > 0) {
      const int64_t tb = KPB == 1 ? 0 : b;
      const C* co = kcos + (tb * NK + j) * H2;
      const C* si = ksin + (tb * NK + j) * H2;
      for (int64_t c = 0; c < H2; c++) {
        C x1 = ld(x + c), x2 = ld(x + c + H2);
        if (kh) { x1 *= kh[c]; x2 *= kh[c + H2]; }
        y[c] = x1 * co[c] - x2 * si[c];
        y[c + H2] = x2 * co[c] + x1 * si[c];
      }
    }
    if (kh) {
      for (int64_t d = R; d < D; d++) y[d] = ld(x + d) * kh[d];
    } else {
      for (int64_t d = R; d < D; d++) y[d] = ld(x + d);
    }
  }

  // xk = ζ^((p0 − p_k)/B) for the H2 frequencies. The exponent is clamped: with positions that grow
  // with the index, only masked keys reach the clamp; a visible key beyond it would carry a logit
  // factor ζ^((p_q − p_k)/B) > e^30, an overflow in any form of xPos.
  void xk_row(int64_t p0, int64_t pk, C* f) const {
    const C d = C(p0 - pk);
    int64_t c = 0;
    for (; c + W <= H2; c += W) {
      V e = vload(lnz + c) * d;
      e = e > vset(xk_clamp) ? vset(xk_clamp) : e;
      e = e < vset(-xk_clamp) ? vset(-xk_clamp) : e;
      vstore(f + c, vexp(e));
    }
    for (; c < H2; c++) {
      C e = lnz[c] * d;
      e = e > xk_clamp ? xk_clamp : (e < -xk_clamp ? -xk_clamp : e);
      f[c] = sexp(e);
    }
  }

  // ---------------------------------------------------------------- forward
  struct FwdScratch {
    Buf buf;
    C *Qr, *QT, *Kr, *ST, *O, *Vb, *xk, *m, *l, *alpha, *mt, *lsum, *pq;
    int32_t *qg;
  };
  // One scratch per pool worker, allocated by the worker on first use.
  struct FwdScratchSet {
    explicit FwdScratchSet(int n) : p(new FwdScratch[n]) {}
    ~FwdScratchSet() { delete[] p; }
    FwdScratchSet(const FwdScratchSet&) = delete;
    FwdScratchSet& operator=(const FwdScratchSet&) = delete;
    FwdScratch& of(int worker) { return p[worker]; }
    FwdScratch* p;
  };

  // Forward, per (batch, head, query tile), with the scores transposed: Sᵀ = K'·Q̂ᵀ is keys × queries,
  // so the online-softmax statistics of the tile's queries are vectors across the columns (no
  // horizontal reductions), Q̂ᵀ is built once per task, the keys need no transposition (without a
  // transform they are read in place), and O += P·V reads Pᵀ as the transposed left operand.
  // Keys with keyScale, rotary, the xPos table factor and the ALiBi features applied, built once for
  // every query tile to share (forward): [B, KH, NK, KS] with KH = heads with a key scale, else kvHeads.
  // Null when nothing is to be applied, or above the budget a.key_cache_bytes (default 512 MiB; then
  // each pair prepares its keys).
  const C* kcache = nullptr;
  int64_t KH = 0;

  void build_key_cache(const T* k, Buf& store) {
    const bool needed = ks || H2 > 0 || sizeof(T) != sizeof(C) || alibi_sep;
    KH = ks ? H : KVH;
    const double bytes = double(B * KH * NK) * double(KS) * sizeof(C);
    const double budget = a.key_cache_bytes >= 0 ? a.key_cache_bytes : 512.0 * 1024 * 1024;
    if (!needed || bytes > budget) return;
    store.reset(size_t(bytes), false);
    C* kc = static_cast<C*>(store.get());
    for_rows(B * KH * NK, [&](int64_t row) {
      const int64_t b = row / (KH * NK), kh = (row / NK) % KH, j = row % NK;
      const int64_t g = ks ? kh % KVH : kh;
      C* y = kc + row * KS;
      key_row(k, b, g, kh, j, y);  // kh is the head when there is a key scale (else unused)
      const KTile& kt = ktiles[b * NKT + j / BK];
      if (xpos && kt.regular) {
        const C* f = kx + ((KPB == 1 ? 0 : b) * NK + j) * H2;
        for (int64_t c = 0; c < H2; c++) { y[c] *= f[c]; y[c + H2] *= f[c]; }
      }
      for (int64_t d = D; d < KS; d++) y[d] = 0;
      if (alibi_sep) {
        y[D] = 1;
        y[D + 1] = C(kpos(b, j) - kpos(b, j / BK * BK));
      }
    });
    kcache = kc;
  }

  void forward(const T* q, const T* k, const T* v, T* out, char* lse) {
    const int64_t ntasks = B * H * NQT;
    const bool direct_v = sizeof(T) == sizeof(C) && D % NB == 0;
    Buf kcache_b;
    build_key_cache(k, kcache_b);
    FwdScratchSet scratch(thread_count());
    parallel_tasks(ntasks, [&](int64_t task, int worker) {
      FtzScope ftz;
      FwdScratch& w = scratch.of(worker);
      if (!w.buf.get()) alloc_fwd(w);
      const int64_t t = NQT - 1 - task / (B * H);  // late query tiles see the most keys: first
      const int64_t bh = task % (B * H);
      fwd_tile(q, k, v, out, lse, bh / H, bh % H, t, direct_v, w);
    });
  }

  void alloc_fwd(FwdScratch& w) const {
    const size_t qt = size_t(BQ * Dp), kt = size_t(BK * KS), row = size_t(BQ);
    const size_t n = qt * 3 + kt * 2 + size_t(BK * BQ) + size_t(BK * (H2 + W)) + row * 7 + size_t(2 * BQ);
    w.buf.reset(sizeof(C) * n + sizeof(int32_t) * row + 64 * 20);
    char* p = static_cast<char*>(w.buf.get());
    auto take = [&](size_t elems) { char* r = p; p += (elems * sizeof(C) + 63) / 64 * 64; return reinterpret_cast<C*>(r); };
    w.Qr = take(qt);
    w.QT = take(qt + size_t(2 * BQ));
    w.O = take(qt);
    w.Kr = take(kt);
    w.Vb = take(kt);
    w.ST = take(size_t(BK * BQ));
    w.xk = take(size_t(BK * (H2 + W)));
    w.m = take(row);
    w.l = take(row);
    w.alpha = take(row);
    w.mt = take(row);
    w.lsum = take(row);
    w.pq = take(row);
    w.qg = reinterpret_cast<int32_t*>(p);
  }

  void fwd_tile(const T* q, const T* k, const T* v, T* out, char* lse, int64_t b, int64_t h, int64_t t,
                bool direct_v, FwdScratch& w) const {
    const int64_t g = h % KVH;  // x-transformers grouping: head h reads KV head h mod kvHeads
    const C slope = slopes[h];
    const int64_t ti0 = t * BQ, nqt = imin(BQ, NQ - ti0);
    const int64_t off = a.query_offset;
    // Q̂ᵀ (D × BQ; padding columns zero), query positions/segments, softmax state.
    prep_q(q, b, h, ti0, nqt, w.Qr);
    for (int64_t d = 0; d < D; d++) {
      C* dst = w.QT + d * BQ;
      for (int64_t c = 0; c < nqt; c++) dst[c] = w.Qr[c * Dp + d];
      for (int64_t c = nqt; c < BQ; c++) dst[c] = 0;
    }
    for (int64_t c = 0; c < BQ; c++) {
      w.pq[c] = c < nqt ? C(qpos(b, ti0 + c)) : C(0);
      w.qg[c] = c < nqt ? qseg(b, ti0 + c) : 0;
      w.m[c] = kNegInf;
      w.l[c] = 0;
    }
    for (int64_t x = 0; x < nqt * Dp; x++) w.O[x] = 0;
    const bool aug = alibi_sep && slope != 0;
    const int64_t rq = qpos(b, ti0);
    if (aug) {
      for (int64_t c = 0; c < BQ; c++) {
        w.QT[D * BQ + c] = c < nqt ? -slope * C(qpos(b, ti0 + c) - rq) : C(0);
        w.QT[(D + 1) * BQ + c] = c < nqt ? slope : C(0);
      }
    }
    const bool transform = ks || H2 > 0 || sizeof(T) != sizeof(C) || aug;
    for (int64_t si = suboff[b * NQT + t]; si < suboff[b * NQT + t + 1]; si++) {
      const Sub& sub = subs[si];
      const int64_t c0 = sub.i0 - ti0, c1 = sub.i1 - ti0;
      const bool whole = c0 == 0 && c1 == BQ;  // the sub-tile spans every column of the tile
      for (int64_t kt = 0; kt < NKT; kt++) {
        const int64_t j0 = kt * BK, nkv = imin(BK, NK - j0);
        const int kind = classify(sub, ktiles[b * NKT + kt], j0, nkv);
        if (kind == 0) continue;
        // K' rows: keyScale, rotary, xPos; read in place when there is nothing to apply.
        const C* Kp;
        int64_t ldk;
        const int64_t rk = kpos(b, j0);
        const int64_t DK = aug ? D + 2 : D;  // product depth for the scores
        bool split = false;                  // rotated features from w.Kr, the rest from the cache
        if (kcache) {
          const KTile& ktl = ktiles[b * NKT + kt];
          Kp = kcache + ((b * KH + (ks ? h : g)) * NK + j0) * KS;
          ldk = KS;
          if (xpos) {
            // ζ^((p0 − p_k)/B) = ζ^((p0 − pmin)/B) · kx (already in the cache), or per key when irregular.
            if (ktl.regular) xk_row(sub.p0, ktl.pmin, w.xk);
            for (int64_t j = 0; j < nkv; j++) {
              if (!ktl.regular) xk_row(sub.p0, kpos(b, j0 + j), w.xk);
              const C* src = Kp + j * KS;
              C* dst = w.Kr + j * KS;
              for (int64_t c = 0; c < H2; c++) { dst[c] = src[c] * w.xk[c]; dst[c + H2] = src[c + H2] * w.xk[c]; }
            }
            split = true;
          }
        } else if (transform || xpos) {
          for (int64_t j = 0; j < nkv; j++) {
            C* rowp = w.Kr + j * KS;
            key_row(k, b, g, h, j0 + j, rowp);
            if (xpos) {
              xk_row(sub.p0, kpos(b, j0 + j), w.xk);
              for (int64_t c = 0; c < H2; c++) { rowp[c] *= w.xk[c]; rowp[c + H2] *= w.xk[c]; }
            }
            if (aug) {
              rowp[D] = 1;
              rowp[D + 1] = C(kpos(b, j0 + j) - rk);
            }
          }
          Kp = w.Kr;
          ldk = KS;
        } else {
          Kp = reinterpret_cast<const C*>(k + ((b * KVH + g) * NK + j0) * D);
          ldk = D;
        }
        const C* vs;
        int64_t ldv;
        const T* vsrc = v + ((b * KVH + g) * NK + j0) * D;
        if (direct_v) {
          vs = reinterpret_cast<const C*>(vsrc);
          ldv = D;
        } else {
          for (int64_t j = 0; j < nkv; j++) {
            for (int64_t d = 0; d < D; d++) w.Vb[j * Dp + d] = ld(vsrc + j * D + d);
            for (int64_t d = D; d < Dp; d++) w.Vb[j * Dp + d] = 0;
          }
          vs = w.Vb;
          ldv = Dp;
        }
        if (split) {  // Sᵀ = K' Q̂ᵀ over the rotated features, then the others
          gemm_tile<C>(nkv, BQ, R, w.Kr, KS, 1, w.QT, BQ, w.ST, BQ, false);
          if (DK > R) gemm_tile<C>(nkv, BQ, DK - R, Kp + R, ldk, 1, w.QT + R * BQ, BQ, w.ST, BQ, true);
        } else {
          gemm_tile<C>(nkv, BQ, DK, Kp, ldk, 1, w.QT, BQ, w.ST, BQ, false);  // Sᵀ = K' Q̂ᵀ
        }
        const C cp = aug ? slope * C(rk - rq) : C(0);  // the pair's ALiBi constant
        // Bias and masks, then column maxima, row by row (a row is one key against the tile's queries).
        const bool mask = kind == 1 || !whole || nqt < BQ;
        for (int64_t c = 0; c < BQ; c += W) { vstore(w.mt + c, vset(kNegInf)); vstore(w.lsum + c, V{}); }
        for (int64_t j = 0; j < nkv; j++) {
          C* s = w.ST + j * BQ;
          if (slope != 0 && !aug) {
            const V pk = vset(C(kpos(b, j0 + j))), sl = vset(slope);
            for (int64_t c = 0; c < BQ; c += W) {
              const V dd = vload(w.pq + c) - pk;
              vstore(s + c, vload(s + c) - sl * (dd < vset(C(0)) ? -dd : dd));
            }
          }
          if (mask) {
            // Visible columns: [max(c0, first causal column), min(c1, nqt)), same segment.
            int64_t lo = c0, hi = imin(c1, nqt);
            if (causal) lo = imax(lo, j0 + j - off - ti0);
            for (int64_t c = 0; c < imin(lo, BQ); c++) s[c] = kNegInf;
            for (int64_t c = imax(hi, int64_t(0)); c < BQ; c++) s[c] = kNegInf;
            if (seg && kind == 1) {
              const int32_t kg = kseg(b, j0 + j);
              for (int64_t c = 0; c < BQ; c++) s[c] = w.qg[c] != kg ? kNegInf : s[c];
            }
          }
          for (int64_t c = 0; c < BQ; c += W) {
            const V x = vload(s + c), mo = vload(w.mt + c);
            vstore(w.mt + c, x > mo ? x : mo);
          }
        }
        // Rescale factors, then P = exp(S + cp − m) and column sums.
        const V cpv = vset(cp);
        for (int64_t c = 0; c < BQ; c += W) {
          const V mo = vload(w.m + c), mt = vload(w.mt + c) + cpv;
          const V mn = mt > mo ? mt : mo;
          const V ms = mn == vset(kNegInf) ? vset(C(0)) : mn;  // nothing visible yet: P = 0, α = 0
          vstore(w.alpha + c, vexp(mo - ms));
          vstore(w.m + c, mn);
          vstore(w.mt + c, ms - cpv);
        }
        for (int64_t j = 0; j < nkv; j++) {
          C* s = w.ST + j * BQ;
          for (int64_t c = 0; c < BQ; c += W) {
            const V p = vexp(vload(s + c) - vload(w.mt + c));
            vstore(s + c, p);
            vstore(w.lsum + c, vload(w.lsum + c) + p);
          }
        }
        for (int64_t c = 0; c < BQ; c += W) vstore(w.l + c, vload(w.l + c) * vload(w.alpha + c) + vload(w.lsum + c));
        const int64_t r0 = c0, r1 = imin(c1, nqt);
        for (int64_t r = r0; r < r1; r++) {
          const C al = w.alpha[r];
          if (al == C(1)) continue;
          C* o = w.O + r * Dp;
          const V av = vset(al);
          for (int64_t d = 0; d < Dp; d += W) vstore(o + d, vload(o + d) * av);
        }
        // O[r0:r1] += P V, P read from Sᵀ as a transposed operand.
        if (r1 > r0) gemm_tile<C>(r1 - r0, Dp, nkv, w.ST + r0, 1, BQ, vs, ldv, w.O + r0 * Dp, Dp, true);
      }
    }
    for (int64_t r = 0; r < nqt; r++) {
      const int64_t i = ti0 + r;
      const C l = w.l[r];
      const C inv = l > 0 ? C(1) / l : C(0);
      T* o = out + ((b * H + h) * NQ + i) * D;
      for (int64_t d = 0; d < D; d++) st(o + d, w.O[r * Dp + d] * inv);
      const double lv = l > 0 ? double(w.m[r]) + ::log(double(l)) : -__builtin_inf();
      store_any(a.lse_dtype, lse, (b * H + h) * NQ + i, lv);
    }
  }

  // ---------------------------------------------------------------- backward
  // Per pair the scores are again transposed (keys × queries): Sᵀ = K'Q̂ᵀ, dPᵀ = V dOᵀ, then
  // dV += Pᵀ dO, dK' += dSᵀ Q̂ and dQ̂ += (dSᵀ)ᵀ K'. Q̂, Q̂ᵀ and dOᵀ are built once for every query
  // tile (memory: three copies of q), so a pair only prepares its keys.
  struct BwdScratch {
    Buf buf;
    C *Kr, *Kp, *Vb, *ST, *dPT, *tmp, *dV, *dKr, *dK, *xk, *kraw, *lsm;
  };
  struct BwdScratchSet {
    explicit BwdScratchSet(int n) : p(new BwdScratch[n]) {}
    ~BwdScratchSet() { delete[] p; }
    BwdScratchSet(const BwdScratchSet&) = delete;
    BwdScratchSet& operator=(const BwdScratchSet&) = delete;
    BwdScratch& of(int worker) { return p[worker]; }
    BwdScratch* p;
  };
  // dQ accumulator slots per (batch, KV head) group: key tile kt adds into slot kt mod slots.
  static constexpr int64_t kDqSlots = 8;

  struct Prepared {
    const C *Qhat, *QhatT, *dOT, *dOr, *lsec, *dvec;  // per query tile (b, h, t): BQ·Dp, D·BQ, D·BQ, BQ·Dp, BQ, BQ
    bool direct_do;
    const C* pqc;  // query positions per (b, t): BQ
  };

  void backward(const T* q, const T* k, const T* v, const T* out, const char* lse, const T* gout, T* gq, T* gk,
                T* gv, char* gks) {
    if (B * NQ == 0 || NK == 0) {  // no scores: every gradient is zero
      for (int64_t x = 0; x < B * H * NQ * D; x++) st(gq + x, C(0));
      for (int64_t x = 0; x < B * KVH * NK * D; x++) { st(gk + x, C(0)); st(gv + x, C(0)); }
      if (gks)
        for (int64_t x = 0; x < H * D; x++) store_any(a.key_scale_dtype, gks, x, 0.0);
      return;
    }
    // Per query tile: Q̂ (rows), Q̂ᵀ, dOᵀ, dO rows when they cannot be read in place, the lse
    // (−inf, a fully masked row, and padding → +inf: P = 0) and D_i = rowsum(dO ⊙ O).
    const int64_t ntiles = B * H * NQT;
    const bool direct_do = sizeof(T) == sizeof(C) && D % NB == 0;
    // (Not zeroed: every element the products read is written below, padding included.)
    Buf qhat_b(sizeof(C) * size_t(ntiles * BQ * Dp), false), qhatT_b(sizeof(C) * size_t(ntiles * DQ * BQ), false);
    Buf doT_b(sizeof(C) * size_t(ntiles * D * BQ), false), dor_b(direct_do ? 0 : sizeof(C) * size_t(ntiles * BQ * Dp), false);
    Buf lse_b(sizeof(C) * size_t(ntiles * BQ), false), dvec_b(sizeof(C) * size_t(ntiles * BQ), false);
    Buf pqc_b(sizeof(C) * size_t(B * NQT * BQ), false);
    C* pqc = static_cast<C*>(pqc_b.get());
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < NQT * BQ; i++) pqc[b * NQT * BQ + i] = i < NQ ? C(qpos(b, i)) : C(0);
    Prepared pr{static_cast<C*>(qhat_b.get()), static_cast<C*>(qhatT_b.get()), static_cast<C*>(doT_b.get()),
                static_cast<C*>(dor_b.get()), static_cast<C*>(lse_b.get()), static_cast<C*>(dvec_b.get()), direct_do,
                pqc};
    parallel_tasks(ntiles, [&](int64_t tix, int) {
      const int64_t bh = tix / NQT, t = tix % NQT, b = bh / H, h = bh % H;
      const int64_t i0 = t * BQ, nqt = imin(BQ, NQ - i0);
      C* Qr = const_cast<C*>(pr.Qhat) + tix * BQ * Dp;
      C* QT = const_cast<C*>(pr.QhatT) + tix * DQ * BQ;
      C* dT = const_cast<C*>(pr.dOT) + tix * D * BQ;
      C* dr = direct_do ? nullptr : const_cast<C*>(pr.dOr) + tix * BQ * Dp;
      C* ls = const_cast<C*>(pr.lsec) + tix * BQ;
      C* dv = const_cast<C*>(pr.dvec) + tix * BQ;
      prep_q(q, b, h, i0, nqt, Qr);
      for (int64_t c = 0; c < nqt; c++) {
        const int64_t row = bh * NQ + i0 + c;
        const T* o = out + row * D;
        const T* g = gout + row * D;
        C s = 0;
        for (int64_t d = 0; d < D; d++) {
          const C gd = ld(g + d);
          s += ld(o + d) * gd;
          dT[d * BQ + c] = gd;
          QT[d * BQ + c] = Qr[c * Dp + d];
          if (dr) dr[c * Dp + d] = gd;
        }
        dv[c] = s;
        const double l = load_any(a.lse_dtype, lse, row);
        ls[c] = l == -__builtin_inf() ? C(__builtin_inf()) : C(l);
      }
      for (int64_t c = nqt; c < BQ; c++) {
        ls[c] = C(__builtin_inf());
        dv[c] = 0;
        for (int64_t d = 0; d < D; d++) { dT[d * BQ + c] = 0; QT[d * BQ + c] = 0; }
      }
      if (alibi_sep) {  // the two ALiBi features (zero for heads without ALiBi)
        const C sl = slopes[h];
        const int64_t rq = qpos(b, i0);
        for (int64_t c = 0; c < BQ; c++) {
          QT[D * BQ + c] = c < nqt ? -sl * C(qpos(b, i0 + c) - rq) : C(0);
          QT[(D + 1) * BQ + c] = c < nqt ? sl : C(0);
        }
      }
      for (int64_t c = 0; c < BQ; c++) {  // padding rows and columns of the row-major copies
        for (int64_t d = c < nqt ? D : 0; d < Dp; d++) {
          Qr[c * Dp + d] = 0;
          if (dr) dr[c * Dp + d] = 0;
        }
      }
    });
    // dQ̂ accumulators: the key tiles of a (batch, KV head) group are dealt to `slots` slots (tile kt to
    // slot kt mod slots, which spreads the heavy early tiles of a causal mask); one task per (group,
    // slot) adds its tiles' contributions in tile order into the slot's accumulator. The key-scale
    // gradient is kept per (group, slot) the same way. Summing the slots in order then gives the
    // same bits whatever the number of threads.
    const int64_t slots = imin(NKT, kDqSlots);
    const int64_t ngroups = B * KVH;
    Buf dks_b;
    double* dks = nullptr;
    if (gks && ks) {
      dks_b.reset(sizeof(double) * size_t(ngroups * slots) * size_t(G * D));
      dks = static_cast<double*>(dks_b.get());
    }
    // The accumulators cover `gp` groups × query rows [qa, qa + qc), capped at a.dq_accumulator_bytes
    // (default 256 MiB) in all: above it the work runs in several passes (no extra arithmetic).
    const double acc_budget = a.dq_accumulator_bytes >= 0 ? a.dq_accumulator_bytes : 256.0 * 1024 * 1024;
    const double per_group = double(slots) * double(G * NQ * Dp) * sizeof(C);
    int64_t gp = 1, qc = NQ;
    if (per_group <= acc_budget) {
      gp = imin(ngroups, imax(1, int64_t(acc_budget / per_group)));
    } else {
      const double per_row = double(slots) * double(G * Dp) * sizeof(C);
      qc = imax(BQ, int64_t(acc_budget / per_row) / BQ * BQ);
    }
    const int64_t acc_elems = gp * G * qc * Dp;
    Buf acc_b(sizeof(C) * size_t(slots) * size_t(acc_elems), false);
    C* acc = static_cast<C*>(acc_b.get());
    BwdScratchSet scratch(thread_count());

    for (int64_t g0 = 0; g0 < ngroups; g0 += gp) {
      const int64_t g1 = imin(ngroups, g0 + gp);
      for (int64_t qa = 0; qa < NQ; qa += qc) {
        const int64_t qb = imin(NQ, qa + qc);
        const int64_t acc_total = slots * acc_elems;
        const int64_t zero_chunk = 1 << 14;
        parallel_tasks((acc_total + zero_chunk - 1) / zero_chunk, [&](int64_t c, int) {
          C* p = acc + c * zero_chunk;
          for (int64_t x = 0, n = imin(zero_chunk, acc_total - c * zero_chunk); x < n; x++) p[x] = 0;
        });
        parallel_tasks((g1 - g0) * slots, [&](int64_t task, int worker) {
          FtzScope ftz;
          BwdScratch& w = scratch.of(worker);
          if (!w.buf.get()) alloc_bwd(w);
          const int64_t slot = task / (g1 - g0);
          const int64_t gi = g0 + task % (g1 - g0);
          C* slot_acc = acc + size_t(slot) * size_t(acc_elems);
          double* slot_dks = dks ? dks + size_t(gi * slots + slot) * size_t(G * D) : nullptr;
          for (int64_t kt = slot; kt < NKT; kt += slots)
            bwd_task(k, v, gout, gk, gv, pr, gi, kt, g0, qa, qb, qc, slot_acc, slot_dks, w);
        });
        // dq = Rᵀ(scale · xq ⊙ Σ_slots dQ̂).
        const int64_t rows = (g1 - g0) * G * (qb - qa);
        const int64_t chunks = imin(rows, int64_t(thread_count()) * 4);
        parallel_tasks(chunks, [&](int64_t chunk, int) {
          Buf ub(sizeof(C) * size_t(Dp));
          C* u = static_cast<C*>(ub.get());
          for (int64_t row = rows * chunk / chunks; row < rows * (chunk + 1) / chunks; row++) {
            const int64_t gl = row / (G * (qb - qa));
            const int64_t hh = (row / (qb - qa)) % G;
            const int64_t i = qa + row % (qb - qa);
            const int64_t gi = g0 + gl, b = gi / KVH, h = gi % KVH + hh * KVH;
            const int64_t off = ((gl * G + hh) * qc + (i - qa)) * Dp;
            for (int64_t d = 0; d < Dp; d++) u[d] = 0;
            for (int64_t slot = 0; slot < slots; slot++) {
              const C* src = acc + size_t(slot) * size_t(acc_elems) + off;
              for (int64_t d = 0; d < Dp; d++) u[d] += src[d];
            }
            T* dst = gq + ((b * H + h) * NQ + i) * D;
            if (H2 > 0) {
              const int64_t tb = QPB == 1 ? 0 : b;
              const C* co = qcos + (tb * NQ + i) * H2;
              const C* si = qsin + (tb * NQ + i) * H2;
              const C* xf = xpos ? qx + (tb * NQ + i) * H2 : nullptr;
              for (int64_t c = 0; c < H2; c++) {
                const C f = xf ? xf[c] * scale : scale;
                const C g1v = u[c] * f, g2v = u[c + H2] * f;
                st(dst + c, g1v * co[c] + g2v * si[c]);
                st(dst + c + H2, g2v * co[c] - g1v * si[c]);
              }
            }
            for (int64_t d = R; d < D; d++) st(dst + d, u[d] * scale);
          }
        });
      }
    }
    if (gks) {  // head h = g + hh·KVH: summed over the batch, then the slots, in order
      for (int64_t x = 0; x < H * D; x++) {
        const int64_t h = x / D, g = h % KVH, hh = h / KVH, d = x % D;
        double s = 0;
        if (dks)
          for (int64_t b = 0; b < B; b++)
            for (int64_t slot = 0; slot < slots; slot++)
              s += dks[size_t((b * KVH + g) * slots + slot) * size_t(G * D) + size_t(hh * D + d)];
        store_any(a.key_scale_dtype, gks, x, s);
      }
    }
  }

  void alloc_bwd(BwdScratch& w) const {
    const size_t tile = size_t(BK * Dp), st_ = size_t(BK * BQ);
    const size_t n = tile * 7 + size_t(2 * BK * KS) + st_ * 2 + size_t(BK * (H2 + W)) + size_t(BQ);
    w.buf.reset(sizeof(C) * n + 64 * 16);
    char* p = static_cast<char*>(w.buf.get());
    auto take = [&](size_t elems) { char* r = p; p += (elems * sizeof(C) + 63) / 64 * 64; return reinterpret_cast<C*>(r); };
    w.Kr = take(size_t(BK * KS));
    w.Kp = take(size_t(BK * KS));
    w.Vb = take(tile);
    w.ST = take(st_);
    w.dPT = take(st_);
    w.tmp = take(tile);
    w.dV = take(tile);
    w.dKr = take(tile);
    w.dK = take(tile);
    w.kraw = take(tile);
    w.xk = take(size_t(BK * (H2 + W)));
    w.lsm = take(size_t(BQ));
  }

  void bwd_task(const T* k, const T* v, const T* gout, T* gk, T* gv, const Prepared& pr, int64_t gi, int64_t kt,
                int64_t g0, int64_t qa, int64_t qb, int64_t qc, C* slot_acc, double* slot_dks, BwdScratch& w) const {
    const int64_t b = gi / KVH, g = gi % KVH;
    const int64_t j0 = kt * BK, nkv = imin(BK, NK - j0);
    const KTile& ktile = ktiles[b * NKT + kt];
    const int64_t off = a.query_offset;
    const T* vsrc = v + ((b * KVH + g) * NK + j0) * D;
    const C* Vr;
    int64_t ldv;
    if (sizeof(T) == sizeof(C)) {
      Vr = reinterpret_cast<const C*>(vsrc);
      ldv = D;
    } else {
      for (int64_t j = 0; j < nkv; j++)
        for (int64_t d = 0; d < D; d++) w.Vb[j * Dp + d] = ld(vsrc + j * D + d);
      Vr = w.Vb;
      ldv = Dp;
    }
    for (int64_t x = 0; x < nkv * Dp; x++) { w.dV[x] = 0; w.dK[x] = 0; }
    if (slot_dks) {
      const T* ksrc = k + ((b * KVH + g) * NK + j0) * D;
      for (int64_t j = 0; j < nkv; j++)
        for (int64_t d = 0; d < D; d++) w.kraw[j * Dp + d] = ld(ksrc + j * D + d);
    }
    const int64_t t_begin = qa / BQ, t_end = (qb + BQ - 1) / BQ;
    for (int64_t hh = 0; hh < G; hh++) {
      const int64_t h = g + hh * KVH;
      const C slope = slopes[h];
      for (int64_t x = 0; x < nkv * Dp; x++) w.dKr[x] = 0;
      const bool aug = alibi_sep && slope != 0;
      const int64_t rk = kpos(b, j0);
      for (int64_t j = 0; j < nkv; j++) {
        C* rowp = w.Kr + j * KS;
        key_row(k, b, g, h, j0 + j, rowp);
        for (int64_t d = D; d < KS; d++) rowp[d] = 0;
        if (aug) {
          rowp[D] = 1;
          rowp[D + 1] = C(kpos(b, j0 + j) - rk);
        }
      }
      bool any = false;
      for (int64_t t = t_begin; t < t_end; t++) {
        const int64_t tix = (b * H + h) * NQT + t;
        const int64_t ti0 = t * BQ, nqt = imin(BQ, NQ - ti0);
        const C* Qr = pr.Qhat + tix * BQ * Dp;
        const C* QT = pr.QhatT + tix * DQ * BQ;
        const C* dT = pr.dOT + tix * D * BQ;
        const C* ls = pr.lsec + tix * BQ;
        const C* dv = pr.dvec + tix * BQ;
        const C* pq = pr.pqc + (b * NQT + t) * BQ;
        const C* dOr;
        int64_t ldo;
        if (pr.direct_do) {
          dOr = reinterpret_cast<const C*>(gout + ((b * H + h) * NQ + ti0) * D);
          ldo = D;
        } else {
          dOr = pr.dOr + tix * BQ * Dp;
          ldo = Dp;
        }
        for (int64_t si = suboff[b * NQT + t]; si < suboff[b * NQT + t + 1]; si++) {
          const Sub& sub = subs[si];
          const int kind = classify(sub, ktile, j0, nkv);
          if (kind == 0) continue;
          any = true;
          const int64_t c0 = sub.i0 - ti0, c1 = sub.i1 - ti0;
          const C* Kp = w.Kr;
          if (xpos) {
            for (int64_t j = 0; j < nkv; j++) {
              C* f = w.xk + j * (H2 + W);
              xk_row(sub.p0, kpos(b, j0 + j), f);
              const C* src = w.Kr + j * KS;
              C* dst = w.Kp + j * KS;
              for (int64_t c = 0; c < H2; c++) { dst[c] = src[c] * f[c]; dst[c + H2] = src[c + H2] * f[c]; }
              for (int64_t d = R; d < KS; d++) dst[d] = src[d];
            }
            Kp = w.Kp;
          }
          gemm_tile<C>(nkv, BQ, aug ? D + 2 : D, Kp, KS, 1, QT, BQ, w.ST, BQ, false);  // Sᵀ = K' Q̂ᵀ
          const V cpv = vset(aug ? slope * C(rk - qpos(b, ti0)) : C(0));  // the pair's ALiBi constant
          for (int64_t c = 0; c < BQ; c += W) vstore(w.lsm + c, vload(ls + c) - cpv);
          gemm_tile<C>(nkv, BQ, D, Vr, ldv, 1, dT, BQ, w.dPT, BQ, false);  // dPᵀ = V dOᵀ
          const bool whole = c0 == 0 && c1 == BQ;
          const bool mask = kind == 1 || !whole || nqt < BQ;
          for (int64_t j = 0; j < nkv; j++) {
            C* s = w.ST + j * BQ;
            C* dp = w.dPT + j * BQ;
            if (slope != 0 && !aug) {
              const V pk = vset(C(kpos(b, j0 + j))), sl = vset(slope);
              for (int64_t c = 0; c < BQ; c += W) {
                const V dd = vload(pq + c) - pk;
                vstore(s + c, vload(s + c) - sl * (dd < vset(C(0)) ? -dd : dd));
              }
            }
            if (mask) {
              int64_t lo = c0, hi = imin(c1, nqt);
              if (causal) lo = imax(lo, j0 + j - off - ti0);
              for (int64_t c = 0; c < imin(lo, BQ); c++) s[c] = kNegInf;
              for (int64_t c = imax(hi, int64_t(0)); c < BQ; c++) s[c] = kNegInf;
              if (seg && kind == 1) {
                const int32_t kg = kseg(b, j0 + j);
                const int32_t* qg = a.query_segments + b * NQ + ti0;
                for (int64_t c = 0; c < nqt; c++) s[c] = qg[c] != kg ? kNegInf : s[c];
              }
            }
            for (int64_t c = 0; c < BQ; c += W) {
              const V p = vexp(vload(s + c) - vload(w.lsm + c));
              vstore(s + c, p);
              vstore(dp + c, p * (vload(dp + c) - vload(dv + c)));  // dSᵀ = Pᵀ ⊙ (dPᵀ − D)
            }
          }
          const int64_t r0 = c0, r1 = imin(c1, nqt), mc = r1 - r0;
          if (mc <= 0) continue;
          // dV += Pᵀ dO
          gemm_tile<C>(nkv, Dp, mc, w.ST + r0, BQ, 1, dOr + r0 * ldo, ldo, w.dV, Dp, true);
          // dK' += dSᵀ Q̂ (then through xk, which depends on this sub-tile's p0)
          if (xpos) {
            gemm_tile<C>(nkv, Dp, mc, w.dPT + r0, BQ, 1, Qr + r0 * Dp, Dp, w.tmp, Dp, false);
            for (int64_t j = 0; j < nkv; j++) {
              const C* f = w.xk + j * (H2 + W);
              const C* src = w.tmp + j * Dp;
              C* dst = w.dKr + j * Dp;
              for (int64_t c = 0; c < H2; c++) { dst[c] += src[c] * f[c]; dst[c + H2] += src[c + H2] * f[c]; }
              for (int64_t d = R; d < Dp; d++) dst[d] += src[d];
            }
          } else {
            gemm_tile<C>(nkv, Dp, mc, w.dPT + r0, BQ, 1, Qr + r0 * Dp, Dp, w.dKr, Dp, true);
          }
          // dQ̂ += dS K', dS read from dSᵀ as a transposed operand
          const int64_t gl = gi - g0;
          C* accrow = slot_acc + ((gl * G + hh) * qc + (ti0 + r0 - qa)) * Dp;
          gemm_tile<C>(mc, Dp, nkv, w.dPT + r0, 1, BQ, Kp, KS, accrow, Dp, true);
        }
      }
      if (!any) continue;
      // Through the rotation and the key scale: dk̃ = Rᵀ dK_rot; dk += keyScale[h] ⊙ dk̃; dks[h] += dk̃ ⊙ k.
      const C* kh = ks ? ks + h * D : nullptr;
      const int64_t tb = KPB == 1 ? 0 : b;
      for (int64_t j = 0; j < nkv; j++) {
        C* gr = w.dKr + j * Dp;
        if (H2 > 0) {
          const C* co = kcos + (tb * NK + j0 + j) * H2;
          const C* si = ksin + (tb * NK + j0 + j) * H2;
          for (int64_t c = 0; c < H2; c++) {
            const C g1v = gr[c], g2v = gr[c + H2];
            gr[c] = g1v * co[c] + g2v * si[c];
            gr[c + H2] = g2v * co[c] - g1v * si[c];
          }
        }
        C* dk = w.dK + j * Dp;
        if (kh) {
          for (int64_t d = 0; d < D; d++) dk[d] += gr[d] * kh[d];
          if (slot_dks) {
            double* dst = slot_dks + hh * D;
            const C* kr = w.kraw + j * Dp;
            for (int64_t d = 0; d < D; d++) dst[d] += double(gr[d] * kr[d]);
          }
        } else {
          for (int64_t d = 0; d < D; d++) dk[d] += gr[d];
        }
      }
    }
    const bool first = qa == 0;
    for (int64_t j = 0; j < nkv; j++) {
      T* dk = gk + ((b * KVH + g) * NK + j0 + j) * D;
      T* dv = gv + ((b * KVH + g) * NK + j0 + j) * D;
      for (int64_t d = 0; d < D; d++) {
        if (first) {
          st(dk + d, w.dK[j * Dp + d]);
          st(dv + d, w.dV[j * Dp + d]);
        } else {
          st(dk + d, C(ld(dk + d)) + w.dK[j * Dp + d]);
          st(dv + d, C(ld(dv + d)) + w.dV[j * Dp + d]);
        }
      }
    }
  }
};

template <typename T, typename C>
void run_forward(const AttentionArgs& args, const char* q, const char* k, const char* v, char* out, char* lse) {
  Attn<T, C> at(args);
  at.forward(reinterpret_cast<const T*>(q), reinterpret_cast<const T*>(k), reinterpret_cast<const T*>(v),
             reinterpret_cast<T*>(out), lse);
}

template <typename T, typename C>
void run_backward(const AttentionArgs& args, const char* q, const char* k, const char* v, const char* out,
                  const char* lse, const char* gout, char* gq, char* gk, char* gv, char* gks) {
  if (sizeof(C) == 8 && DType(args.lse_dtype) == DType::F32 && args.batch * args.query_len > 0) {
    // A float32 lse would limit float64 gradients to ~1e-7: recompute it in float64 first.
    AttentionArgs a64 = args;
    a64.lse_dtype = int(DType::F64);
    const size_t rows = size_t(args.batch * args.heads * args.query_len);
    Buf out64(rows * size_t(args.head_dim) * sizeof(T), false), lse64(rows * sizeof(double), false);
    Attn<T, C> at(a64);
    at.forward(reinterpret_cast<const T*>(q), reinterpret_cast<const T*>(k), reinterpret_cast<const T*>(v),
               static_cast<T*>(out64.get()), static_cast<char*>(lse64.get()));
    at.backward(reinterpret_cast<const T*>(q), reinterpret_cast<const T*>(k), reinterpret_cast<const T*>(v),
                reinterpret_cast<const T*>(out), static_cast<const char*>(lse64.get()),
                reinterpret_cast<const T*>(gout), reinterpret_cast<T*>(gq), reinterpret_cast<T*>(gk),
                reinterpret_cast<T*>(gv), gks);
    return;
  }
  Attn<T, C> at(args);
  at.backward(reinterpret_cast<const T*>(q), reinterpret_cast<const T*>(k), reinterpret_cast<const T*>(v),
              reinterpret_cast<const T*>(out), lse, reinterpret_cast<const T*>(gout), reinterpret_cast<T*>(gq),
              reinterpret_cast<T*>(gk), reinterpret_cast<T*>(gv), gks);
}

inline void forward(const AttentionArgs& args, const char* q, const char* k, const char* v, char* out, char* lse) {
  switch (DType(args.dtype)) {
    case DType::F32: run_forward<float, float>(args, q, k, v, out, lse); break;
    case DType::F64: run_forward<double, double>(args, q, k, v, out, lse); break;
    case DType::BF16: run_forward<bf16, float>(args, q, k, v, out, lse); break;
    default: throw_unsupported_dtype();
  }
}

inline void backward(const AttentionArgs& args, const char* q, const char* k, const char* v, const char* out,
                     const char* lse, const char* gout, char* gq, char* gk, char* gv, char* gks) {
  switch (DType(args.dtype)) {
    case DType::F32: run_backward<float, float>(args, q, k, v, out, lse, gout, gq, gk, gv, gks); break;
    case DType::F64: run_backward<double, double>(args, q, k, v, out, lse, gout, gq, gk, gv, gks); break;
    case DType::BF16: run_backward<bf16, float>(args, q, k, v, out, lse, gout, gq, gk, gv, gks); break;
    default: throw_unsupported_dtype();
  }
}
