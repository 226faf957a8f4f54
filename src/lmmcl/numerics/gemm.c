/* Matrix products with the same bits on every CPU (lmmcl.numerics, docs/reproducibility.md).
 *
 * Every output element C[i][j] is ONE fused multiply-add chain over k = 0, 1, ..., K-1 in that
 * order, starting from +0: c = fma(A[i][k], B[k][j], c). IEEE 754 defines fma exactly (one
 * rounding), so that chain has one result whatever computes it. The code paths below differ only
 * in how many (i, j) chains they advance at once (AVX-512: 8 rows x 32 or 16 columns, AVX2: 6 x 16
 * or 8, plain C: one), in which thread owns a block of rows, and in where a chain pauses: a long
 * chain is run in pieces of KC steps, its float32 partial sum stored in C and reloaded, which
 * continues the same chain exactly. None of this changes any chain: the same bits on the AVX-512,
 * AVX2 and plain C paths, for any thread count and on any CPU vendor, unlike vendor BLAS
 * libraries, which choose blockings and summation orders per CPU model.
 *
 * Layout: A[t][i][k] = a[t*sab + i*sa0 + k*sa1] (any strides), likewise B; C is written with
 * row stride ldc and batch stride scb. Both operands are first copied (no arithmetic) into the
 * blocks the tiles stream: A as MR interleaved rows, B as panels of NR columns.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define LMMCL_X86 1
#endif

typedef int64_t i64;

/* Grow-only scratch per thread: a product's copies reuse the same memory call after call
 * (large fresh allocations come from mmap: page faults and zeroing every call). */
static float* scratch(int which, size_t n) {
  static __thread float* buf[2];
  static __thread size_t cap[2];
  if (n > cap[which]) {
    free(buf[which]);
    buf[which] = (float*)malloc(n * sizeof(float));
    cap[which] = buf[which] ? n : 0;
  }
  return buf[which];
}

enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
enum { KC = 256, GROUP = 8 }; /* chain piece length; row blocks sharing a B piece while in cache */

int lmmcl_gemm_best_isa(void) {
#ifdef LMMCL_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
#endif
  return ISA_GENERIC;
}

/* One tile: rows x cols of C from K steps of packed A (Ap[k*MR + r]) and a packed B panel
 * (Bp[k*W + j], W its width); acc: continue the chains from C's values instead of +0. */
typedef void (*tile_fn)(i64 K, const float* Ap, i64 ld, const float* Bp, float* C, i64 ldc, int rows, int cols, int acc);

static void tile_generic(i64 K, const float* Ap, i64 ra, i64 ka, const float* Bp, float* C, i64 ldc, int rows,
                         int cols, int acc, int W) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      float s = acc ? C[r * ldc + j] : 0.f;
      for (i64 k = 0; k < K; ++k) s = fmaf(Ap[r * ra + k * ka], Bp[k * W + j], s);
      C[r * ldc + j] = s;
    }
}

#ifdef LMMCL_X86
#define UNROLL _Pragma("GCC unroll 8")

/* AVX-512: R rows (compile-time, unrolled) x V vectors of 16 columns (V = 2: width 32, 1: 16) */
#define TILE512(R, V, L, AIDX)                                                                         \
  __attribute__((target("avx512f"))) static void t512_##L##R##_##V(                                  \
      i64 K, const float* Ap, i64 ld, const float* Bp, float* C, i64 ldc, int rows, int cols, int acc) { \
    (void)rows;                                                                                        \
    __mmask16 m[2];                                                                                    \
    m[0] = cols >= 16 ? 0xFFFF : (__mmask16)((1u << cols) - 1u);                                       \
    m[1] = cols >= 32 ? 0xFFFF : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1u) : 0;                \
    __m512 c[R][V];                                                                                    \
    UNROLL for (int r = 0; r < R; ++r) UNROLL for (int v = 0; v < V; ++v)                              \
        c[r][v] = acc ? _mm512_maskz_loadu_ps(m[v], C + r * ldc + 16 * v) : _mm512_setzero_ps();      \
    for (i64 k = 0; k < K; ++k) {                                                                      \
      __m512 bv[V];                                                                                    \
      UNROLL for (int v = 0; v < V; ++v) bv[v] = _mm512_loadu_ps(Bp + k * 16 * V + 16 * v);            \
      UNROLL for (int r = 0; r < R; ++r) {                                                             \
        const __m512 av = _mm512_set1_ps(Ap[AIDX]);                                                     \
        UNROLL for (int v = 0; v < V; ++v) c[r][v] = _mm512_fmadd_ps(av, bv[v], c[r][v]);              \
      }                                                                                                \
    }                                                                                                  \
    UNROLL for (int r = 0; r < R; ++r) UNROLL for (int v = 0; v < V; ++v)                              \
        _mm512_mask_storeu_ps(C + r * ldc + 16 * v, m[v], c[r][v]);                                    \
  }
#define ROWIDX r * ld + k /* A row-major in place: (r, k) at r*ld + k */
#define COLIDX k * ld + r /* A column-major (transposed, or packed): (r, k) at k*ld + r */
#define TILES512(V, L, I) TILE512(1, V, L, I) TILE512(2, V, L, I) TILE512(3, V, L, I) TILE512(4, V, L, I) \
                          TILE512(5, V, L, I) TILE512(6, V, L, I) TILE512(7, V, L, I) TILE512(8, V, L, I)
TILES512(1, r, ROWIDX)
TILES512(2, r, ROWIDX)
TILES512(1, c, COLIDX)
TILES512(2, c, COLIDX)
static const tile_fn T512[2][3][9] = {
    {{0}, {0, t512_r1_1, t512_r2_1, t512_r3_1, t512_r4_1, t512_r5_1, t512_r6_1, t512_r7_1, t512_r8_1},
     {0, t512_r1_2, t512_r2_2, t512_r3_2, t512_r4_2, t512_r5_2, t512_r6_2, t512_r7_2, t512_r8_2}},
    {{0}, {0, t512_c1_1, t512_c2_1, t512_c3_1, t512_c4_1, t512_c5_1, t512_c6_1, t512_c7_1, t512_c8_1},
     {0, t512_c1_2, t512_c2_2, t512_c3_2, t512_c4_2, t512_c5_2, t512_c6_2, t512_c7_2, t512_c8_2}}};

/* AVX2 + FMA: R rows x V vectors of 8 columns (V = 2: width 16, 1: 8) */
#define TILE256(R, V, L, AIDX)                                                                         \
  __attribute__((target("avx2,fma"))) static void t256_##L##R##_##V(                                 \
      i64 K, const float* Ap, i64 ld, const float* Bp, float* C, i64 ldc, int rows, int cols, int acc) { \
    (void)rows;                                                                                        \
    int32_t lane[16];                                                                                  \
    for (int j = 0; j < 16; ++j) lane[j] = j < cols ? -1 : 0;                                          \
    __m256i m[2];                                                                                      \
    m[0] = _mm256_loadu_si256((const __m256i*)lane);                                                   \
    m[1] = _mm256_loadu_si256((const __m256i*)(lane + 8));                                             \
    __m256 c[R][V];                                                                                    \
    UNROLL for (int r = 0; r < R; ++r) UNROLL for (int v = 0; v < V; ++v)                              \
        c[r][v] = acc ? _mm256_maskload_ps(C + r * ldc + 8 * v, m[v]) : _mm256_setzero_ps();          \
    for (i64 k = 0; k < K; ++k) {                                                                      \
      __m256 bv[V];                                                                                    \
      UNROLL for (int v = 0; v < V; ++v) bv[v] = _mm256_loadu_ps(Bp + k * 8 * V + 8 * v);              \
      UNROLL for (int r = 0; r < R; ++r) {                                                             \
        const __m256 av = _mm256_broadcast_ss(Ap + (AIDX));                                             \
        UNROLL for (int v = 0; v < V; ++v) c[r][v] = _mm256_fmadd_ps(av, bv[v], c[r][v]);              \
      }                                                                                                \
    }                                                                                                  \
    UNROLL for (int r = 0; r < R; ++r) UNROLL for (int v = 0; v < V; ++v)                              \
        _mm256_maskstore_ps(C + r * ldc + 8 * v, m[v], c[r][v]);                                       \
  }
#define TILES256(V, L, I) TILE256(1, V, L, I) TILE256(2, V, L, I) TILE256(3, V, L, I) TILE256(4, V, L, I) \
                          TILE256(5, V, L, I) TILE256(6, V, L, I)
TILES256(1, r, ROWIDX)
TILES256(2, r, ROWIDX)
TILES256(1, c, COLIDX)
TILES256(2, c, COLIDX)
static const tile_fn T256[2][3][7] = {
    {{0}, {0, t256_r1_1, t256_r2_1, t256_r3_1, t256_r4_1, t256_r5_1, t256_r6_1},
     {0, t256_r1_2, t256_r2_2, t256_r3_2, t256_r4_2, t256_r5_2, t256_r6_2}},
    {{0}, {0, t256_c1_1, t256_c2_1, t256_c3_1, t256_c4_1, t256_c5_1, t256_c6_1},
     {0, t256_c1_2, t256_c2_2, t256_c3_2, t256_c4_2, t256_c5_2, t256_c6_2}}};
#endif

/* C[t] = A[t] @ B[t] for t < batch. Returns 0, or -1 if memory ran out. */
int lmmcl_sgemm(i64 batch, i64 M, i64 N, i64 K, const float* a, i64 sab, i64 sa0, i64 sa1,
                const float* b, i64 sbb, i64 sb0, i64 sb1, float* c, i64 scb, i64 ldc, int threads, int isa) {
  if (batch <= 0 || M <= 0 || N <= 0) return 0;
  if (K <= 0) {
    for (i64 t = 0; t < batch; ++t)
      for (i64 i = 0; i < M; ++i) memset(c + t * scb + i * ldc, 0, (size_t)N * sizeof(float));
    return 0;
  }
#ifndef LMMCL_X86
  isa = ISA_GENERIC;
#endif
  const int MR = isa == ISA_AVX512 ? 8 : isa == ISA_AVX2 ? 6 : 4;
  const int NR = isa == ISA_AVX512 ? 32 : 16; /* full panel width; a last panel of <= NR/2 columns is NR/2 wide */
  const i64 nfull = N / NR, rest = N % NR;
  const int last = rest == 0 ? 0 : (rest <= NR / 2 ? NR / 2 : NR);
  const i64 nb = nfull + (rest ? 1 : 0), mb = (M + MR - 1) / MR;
  const i64 bsize = K * (nfull * NR + last); /* floats of one batch's packed B */

  /* B as panels: panel p holds columns [p*NR, p*NR + width) as Bp[k*width + j], zero padded.
   * Batches sharing one B (stride 0) share the copy. */
  const i64 nbat = sbb == 0 ? 1 : batch;
  float* Bp = scratch(0, (size_t)(nbat * bsize));
  if (!Bp) return -1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (i64 w = 0; w < nbat * nb; ++w) {
    const i64 t = w / nb, p = w % nb;
    const int width = p < nfull ? NR : last, cols = p < nfull ? NR : (int)rest;
    const float* src = b + t * sbb + p * NR * sb1;
    float* dst = Bp + t * bsize + p * K * NR;
    if (sb1 == 1) { /* rows contiguous */
      for (i64 k = 0; k < K; ++k) {
        memcpy(dst + k * width, src + k * sb0, (size_t)cols * sizeof(float));
        for (int j = cols; j < width; ++j) dst[k * width + j] = 0.f;
      }
    } else { /* columns contiguous (x @ W^T): read each column once */
      for (int j = 0; j < width; ++j)
        for (i64 k = 0; k < K; ++k) dst[k * width + j] = j < cols ? src[j * sb1 + k * sb0] : 0.f;
    }
  }

  /* A is read in place when its rows or its columns are contiguous, else first copied into
   * column-major blocks. Work item: GROUP row blocks of one batch; for each panel and chain piece
   * every block of the group runs its tile, so the piece of B stays in cache across the group. */
  const int lay = sa1 == 1 ? 0 : sa0 == 1 ? 1 : 2; /* 0: rows contiguous, 1: columns, 2: neither */
  const i64 ngroups = (mb + GROUP - 1) / GROUP;
  int failed = 0;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    float* Ap = lay == 2 ? scratch(1, (size_t)(GROUP * K * MR)) : NULL;
    if (lay == 2 && !Ap) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (i64 w = 0; w < batch * ngroups; ++w) {
      if (lay == 2 && !Ap) continue;
      const i64 t = w / ngroups, q0 = (w % ngroups) * GROUP;
      const i64 q1 = q0 + GROUP < mb ? q0 + GROUP : mb;
      if (lay == 2)
        for (i64 q = q0; q < q1; ++q) {
          const int rows = (int)(M - q * MR < MR ? M - q * MR : MR);
          const float* At = a + t * sab + q * MR * sa0;
          float* dst = Ap + (q - q0) * K * MR;
          for (i64 k = 0; k < K; ++k)
            for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? At[r * sa0 + k * sa1] : 0.f;
        }
      const float* Bt = Bp + (sbb == 0 ? 0 : t) * bsize;
      for (i64 p = 0; p < nb; ++p) {
        const int width = p < nfull ? NR : last, cols = p < nfull ? NR : (int)rest;
        const float* panel = Bt + p * K * NR;
        for (i64 k0 = 0; k0 < K; k0 += KC) {
          const i64 kn = K - k0 < KC ? K - k0 : KC;
          for (i64 q = q0; q < q1; ++q) {
            const int rows = (int)(M - q * MR < MR ? M - q * MR : MR);
            /* A block (rows from q*MR, steps from k0): its start, its leading stride, its layout */
            const float* As = lay == 2 ? Ap + (q - q0) * K * MR + k0 * MR : a + t * sab + q * MR * sa0 + k0 * sa1;
            const i64 ld = lay == 0 ? sa0 : lay == 1 ? sa1 : MR;
            const int col = lay != 0;
            const float* Bs = panel + k0 * width;
            float* Cs = c + t * scb + q * MR * ldc + p * NR;
#ifdef LMMCL_X86
            if (isa == ISA_AVX512) { T512[col][width / 16][rows](kn, As, ld, Bs, Cs, ldc, rows, cols, k0 > 0); continue; }
            if (isa == ISA_AVX2) { T256[col][width / 8][rows](kn, As, ld, Bs, Cs, ldc, rows, cols, k0 > 0); continue; }
#endif
            tile_generic(kn, As, col ? 1 : ld, col ? ld : 1, Bs, Cs, ldc, rows, cols, k0 > 0, width);
          }
        }
      }
    }
  }
  return failed ? -1 : 0;
}

/* The same contract in double precision (plain C; no model in this project computes in it). */
void lmmcl_dgemm(i64 batch, i64 M, i64 N, i64 K, const double* a, i64 sab, i64 sa0, i64 sa1,
                 const double* b, i64 sbb, i64 sb0, i64 sb1, double* c, i64 scb, i64 ldc, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (i64 w = 0; w < batch * M; ++w) {
    const i64 t = w / M, i = w % M;
    for (i64 j = 0; j < N; ++j) {
      double s = 0.0;
      for (i64 k = 0; k < K; ++k) s = fma(a[t * sab + i * sa0 + k * sa1], b[t * sbb + k * sb0 + j * sb1], s);
      c[t * scb + i * ldc + j] = s;
    }
  }
}
