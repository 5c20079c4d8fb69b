// The paged attention kernel, written once over GCC vector extensions and compiled by paged_attention.cc once
// per instruction set, inside namespace andromeda::cpu::paged_<isa> under that set's target pragma, with
// PAGED_VBYTES the vector width in bytes. No standard-library template is instantiated here (an instance
// emitted with this target's instructions could be shared with code that runs on any CPU).
//
// One task = one usable sequence, one KV head g, some of the query heads that read it (h ≡ g mod kvHeads) and a
// chunk of consecutive query rows. Per query row and head, the keys 0 .. its position are visited in tiles, in
// order, with an online softmax (running maximum and sum), so the result depends on the problem only, never on
// the thread count. Transforms, as the dense attention (attention_impl.h):
//   q̂ = scale · xq ⊙ R(p_q) q,   k̂ = xk ⊙ R(p_k) (k ⊙ keyScale[h]),   s = q̂·k̂ − slope_h · (p_q − p_k)
// with xPos relative to the chunk's first position p0: xq = ζ^((p_q − p0)/B), xk = ζ^((p0 − p_k)/B) (tables by
// distance, clamped where the true product is far below the rounding of the score), so nothing overflows at
// any length. Keys whose block id lies outside the pool are skipped; a row that sees no key gets zeros.

static constexpr int kVBytes = PAGED_VBYTES;

template <typename C> struct Vec;
template <> struct Vec<float> {
  typedef float V __attribute__((vector_size(kVBytes)));
  typedef float VU __attribute__((vector_size(kVBytes), aligned(4), may_alias));
  static constexpr int W = kVBytes / 4;
};
template <> struct Vec<double> {
  typedef double V __attribute__((vector_size(kVBytes)));
  typedef double VU __attribute__((vector_size(kVBytes), aligned(8), may_alias));
  static constexpr int W = kVBytes / 8;
};

template <typename C> inline typename Vec<C>::V vload(const C* p) {
  return *reinterpret_cast<const typename Vec<C>::VU*>(p);
}
template <typename C> inline void vstore(C* p, typename Vec<C>::V v) {
  *reinterpret_cast<typename Vec<C>::VU*>(p) = v;
}

// Storage → compute (bfloat16 computes in float).
inline float ld(const float* p) { return *p; }
inline double ld(const double* p) { return *p; }
inline float ld(const bf16* p) { return bf16_to_float(p->bits); }
inline void st(float* p, float v) { *p = v; }
inline void st(double* p, double v) { *p = v; }
inline void st(bf16* p, float v) { p->bits = float_to_bf16(v); }
inline float sexp(float x) { return ::expf(x); }
inline double sexp(double x) { return ::exp(x); }

// a · b over n elements (a multiple of the vector width), lanes summed in order.
template <typename C>
inline C dot(const C* a, const C* b, int64_t n) {
  typedef typename Vec<C>::V V;
  constexpr int W = Vec<C>::W;
  V acc = V{};
  for (int64_t d = 0; d < n; d += W) acc += vload(a + d) * vload(b + d);
  C sum = 0;
  for (int i = 0; i < W; i++) sum += acc[i];
  return sum;
}

// y = y · alpha + p · x over n elements (a multiple of the vector width).
template <typename C>
inline void scale_add(C* y, C alpha, C p, const C* x, int64_t n) {
  typedef typename Vec<C>::V V;
  constexpr int W = Vec<C>::W;
  V va = V{} + alpha, vp = V{} + p;
  for (int64_t d = 0; d < n; d += W) vstore(y + d, vload(y + d) * va + vp * vload(x + d));
}

template <typename T, typename C>
struct PagedKernel {
  const PagedContext& cx;
  const PagedAttentionArgs& a;
  const C* cos_table;  // [positions, half]
  const C* sin_table;
  const C* xpos_table;  // [distances, half], row d + xpos_origin: ζ^(d/B)
  int64_t H, KVH, D, Dp, R, half;

  explicit PagedKernel(const PagedContext& c)
      : cx(c), a(*c.args), cos_table(static_cast<const C*>(c.cos_table)), sin_table(static_cast<const C*>(c.sin_table)),
        xpos_table(static_cast<const C*>(c.xpos_table)) {
    H = a.heads; KVH = a.kv_heads; D = a.head_dim; Dp = c.padded_dim; R = a.rotary_dim; half = R / 2;
  }

  // dst[0, Dp) = factor ⊙ R(p) (x ⊙ mul) for a row x of D elements (mul and factor optional), zero padded.
  template <typename S>
  void transform(const S* x, const C* mul, C outer, int64_t p, const C* factor, C* dst) const {
    for (int64_t d = 0; d < D; d++) dst[d] = C(ld(x + d)) * (mul ? mul[d] : C(1)) * outer;
    if (half > 0) {
      const C* co = cos_table + p * half;
      const C* si = sin_table + p * half;
      for (int64_t f = 0; f < half; f++) {
        const C x1 = dst[f], x2 = dst[f + half];
        C r1 = x1 * co[f] - x2 * si[f], r2 = x2 * co[f] + x1 * si[f];
        if (factor) { r1 *= factor[f]; r2 *= factor[f]; }
        dst[f] = r1;
        dst[f + half] = r2;
      }
    }
    for (int64_t d = D; d < Dp; d++) dst[d] = 0;
  }

  const C* xpos_factor(int64_t distance) const {
    return xpos_table ? xpos_table + (distance + cx.xpos_origin) * half : nullptr;
  }

  void run(const PagedTask& task, char* scratch) const {
    const PagedSequence& sq = cx.seqs[task.seq];
    const T* q = reinterpret_cast<const T*>(cx.q);
    const T* kpool = reinterpret_cast<const T*>(cx.key_pool);
    const T* vpool = reinterpret_cast<const T*>(cx.value_pool);
    T* out = reinterpret_cast<T*>(cx.out);
    const int64_t g = task.kv_head, heads = task.head_end - task.head_begin, rows = task.row_end - task.row_begin;
    const int64_t p0 = sq.first_position() + task.row_begin;  // the chunk's first position: xPos reference
    const int64_t key_end = p0 + rows;                          // keys a row of the chunk may see
    // With a sliding window, keys before the first row's window are seen by no row of the chunk.
    const int64_t key_begin = a.window > 0 && p0 - a.window + 1 > 0 ? p0 - a.window + 1 : 0;
    const C soft_cap = C(a.soft_cap);
    const int64_t KT = cx.key_tile;
    // Scratch: q̂ and accumulators per (head, row), tile keys and values, row statistics, tile scores.
    C* qhat = reinterpret_cast<C*>(scratch);
    C* acc = qhat + heads * rows * Dp;
    C* kt = acc + heads * rows * Dp;
    C* vt = kt + KT * Dp;
    C* run_max = vt + KT * Dp;
    C* run_sum = run_max + heads * rows;
    C* scores = run_sum + heads * rows;
    const T** krow = reinterpret_cast<const T**>(scores + KT);

    for (int64_t m = 0; m < heads; m++) {
      const int64_t h = g + (task.head_begin + m) * KVH;
      for (int64_t r = 0; r < rows; r++) {
        const int64_t t = sq.start + task.row_begin + r, p = p0 + r;
        transform(q + (t * H + h) * D, static_cast<const C*>(nullptr), C(a.scale), p, xpos_factor(p - p0),
                  qhat + (m * rows + r) * Dp);
        for (int64_t d = 0; d < Dp; d++) acc[(m * rows + r) * Dp + d] = 0;
        run_max[m * rows + r] = -C(__builtin_inf());
        run_sum[m * rows + r] = 0;
      }
    }
    const C* key_scale = static_cast<const C*>(cx.key_scale);
    for (int64_t j0 = key_begin; j0 < key_end; j0 += KT) {
      const int64_t n = key_end - j0 < KT ? key_end - j0 : KT;
      // The tile's keys and values, found through the block table; rows outside the pool stay null.
      for (int64_t j = 0; j < n; j++) {
        const int64_t block = block_of(a, sq.index, j0 + j);
        if (block < 0) {
          krow[j] = nullptr;
          continue;
        }
        const int64_t row = (block * a.block_size + (j0 + j) % a.block_size) * KVH + g;
        krow[j] = kpool + row * D;
        const T* v = vpool + row * D;
        for (int64_t d = 0; d < D; d++) vt[j * Dp + d] = C(ld(v + d));
        for (int64_t d = D; d < Dp; d++) vt[j * Dp + d] = 0;
        if (!key_scale)
          transform(krow[j], static_cast<const C*>(nullptr), C(1), j0 + j, xpos_factor(p0 - j0 - j), kt + j * Dp);
      }
      for (int64_t m = 0; m < heads; m++) {
        const int64_t h = g + (task.head_begin + m) * KVH;
        if (key_scale) {
          for (int64_t j = 0; j < n; j++)
            if (krow[j]) transform(krow[j], key_scale + h * D, C(1), j0 + j, xpos_factor(p0 - j0 - j), kt + j * Dp);
        }
        const C slope = cx.slopes ? C(cx.slopes[h]) : C(0);
        for (int64_t r = 0; r < rows; r++) {
          const int64_t p = p0 + r;
          const int64_t visible = p + 1 - j0 < n ? p + 1 - j0 : n;  // keys j ≤ p
          // and, with a window, keys j > p − window
          const int64_t first = a.window > 0 && p - a.window + 1 - j0 > 0 ? p - a.window + 1 - j0 : 0;
          if (visible <= first) continue;
          const C* qr = qhat + (m * rows + r) * Dp;
          C tile_max = -C(__builtin_inf());
          for (int64_t j = first; j < visible; j++) {
            C s = -C(__builtin_inf());
            if (krow[j]) {
              s = dot(qr, kt + j * Dp, Dp);
              if (soft_cap > 0) s = soft_cap * std::tanh(s / soft_cap);
              s -= slope * C(p - j0 - j);
            }
            scores[j] = s;
            tile_max = s > tile_max ? s : tile_max;
          }
          if (!(tile_max > -C(__builtin_inf()))) continue;  // every key of the tile skipped
          C& mx = run_max[m * rows + r];
          C& sum = run_sum[m * rows + r];
          const C new_max = tile_max > mx ? tile_max : mx;
          const C alpha = sexp(mx - new_max);  // 0 while nothing was seen (mx = −∞)
          C* ar = acc + (m * rows + r) * Dp;
          sum *= alpha;
          bool first_key = true;
          for (int64_t j = first; j < visible; j++) {
            if (!krow[j]) continue;
            const C w = sexp(scores[j] - new_max);
            sum += w;
            scale_add(ar, first_key ? alpha : C(1), w, vt + j * Dp, Dp);
            first_key = false;
          }
          mx = new_max;
        }
      }
    }
    for (int64_t m = 0; m < heads; m++) {
      const int64_t h = g + (task.head_begin + m) * KVH;
      for (int64_t r = 0; r < rows; r++) {
        const int64_t t = sq.start + task.row_begin + r;
        const C sum = run_sum[m * rows + r];
        const C inv = sum > 0 ? C(1) / sum : C(0);
        const C* ar = acc + (m * rows + r) * Dp;
        T* o = out + (t * H + h) * D;
        for (int64_t d = 0; d < D; d++) st(o + d, ar[d] * inv);
      }
    }
  }
};

inline void run_task(const PagedContext& cx, const PagedTask& task, char* scratch) {
  switch (DType(cx.args->dtype)) {
    case DType::F32: PagedKernel<float, float>(cx).run(task, scratch); break;
    case DType::F64: PagedKernel<double, double>(cx).run(task, scratch); break;
    default: PagedKernel<bf16, float>(cx).run(task, scratch); break;
  }
}
