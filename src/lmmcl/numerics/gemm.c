/* Matrix products with the same bits on every CPU (lmmcl.numerics, docs/reproducibility.md).
 *
 * Every output element C[i][j] is ONE fused multiply-add chain over k = 0, 1, ..., K-1 in that
 * order, starting from +0: c = fma(A[i][k], B[k][j], c). IEEE 754 defines fma exactly (one
 * rounding), so that chain has one result whatever computes it. The kernels below differ only
 * in how many (i, j) chains they advance at once (AVX-512: 8 x 32, AVX2: 6 x 16, generic C:
 * the compiler's choice) and in which thread owns a block of rows; neither changes any chain.
 * Hence: bit-identical results across AVX-512, AVX2 and plain C paths, across thread counts and
 * across CPU vendors, unlike vendor BLAS libraries, which pick blockings and summation orders
 * per CPU model.
 *
 * Layout: A[b][i][k] = a[b*sab + i*sa0 + k*sa1] (any strides), likewise B; C is written with
 * row stride ldc and batch stride scb.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMMCL_X86 1
#endif

typedef int64_t i64;

enum { ISA_GENERIC = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

int lmmcl_gemm_best_isa(void) {
#ifdef LMMCL_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
#endif
  return ISA_GENERIC;
}

static void block_shape(int isa, int* mr, int* nr) {
  *mr = isa == ISA_AVX512 ? 8 : 6;
  *nr = isa == ISA_AVX512 ? 32 : 16;
}

/* ---- packing: pure copies (zero padded), no arithmetic -------------------------------------- */
static void pack_a(const float* a, i64 sa0, i64 sa1, i64 K, int rows, int MR, float* dst) {
  for (i64 k = 0; k < K; ++k)
    for (int r = 0; r < MR; ++r) dst[k * MR + r] = r < rows ? a[r * sa0 + k * sa1] : 0.f;
}
static void pack_b(const float* b, i64 sb0, i64 sb1, i64 K, int cols, int NR, float* dst) {
  for (int j = 0; j < NR; ++j) {
    if (j < cols) {
      const float* src = b + j * sb1;
      for (i64 k = 0; k < K; ++k) dst[k * NR + j] = src[k * sb0];
    } else {
      for (i64 k = 0; k < K; ++k) dst[k * NR + j] = 0.f;
    }
  }
}

/* ---- micro-kernels: C block (rows x cols of an MR x NR tile) = packed A block @ packed B panel */
static void kern_generic(i64 K, const float* A, const float* B, float* C, i64 ldc, int rows, int cols,
                         int MR, int NR) {
  float acc[8][32];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NR; ++j) acc[r][j] = 0.f;
  for (i64 k = 0; k < K; ++k)
    for (int r = 0; r < MR; ++r) {
      const float av = A[k * MR + r];
      for (int j = 0; j < NR; ++j) acc[r][j] = fmaf(av, B[k * NR + j], acc[r][j]);
    }
  for (int r = 0; r < rows; ++r) memcpy(C + r * ldc, acc[r], (size_t)cols * sizeof(float));
}

#ifdef LMMCL_X86
__attribute__((target("avx2,fma")))
static void kern_avx2(i64 K, const float* A, const float* B, float* C, i64 ldc, int rows, int cols) {
  __m256 c[6][2];
  for (int r = 0; r < 6; ++r) { c[r][0] = _mm256_setzero_ps(); c[r][1] = _mm256_setzero_ps(); }
  for (i64 k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B + k * 16), b1 = _mm256_loadu_ps(B + k * 16 + 8);
    const float* a = A + k * 6;
    _Pragma("GCC unroll 6") for (int r = 0; r < 6; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r);
      c[r][0] = _mm256_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm256_fmadd_ps(av, b1, c[r][1]);
    }
  }
  float tmp[16];
  for (int r = 0; r < rows; ++r) {
    _mm256_storeu_ps(tmp, c[r][0]);
    _mm256_storeu_ps(tmp + 8, c[r][1]);
    memcpy(C + r * ldc, tmp, (size_t)cols * sizeof(float));
  }
}

__attribute__((target("avx512f")))
static void kern_avx512(i64 K, const float* A, const float* B, float* C, i64 ldc, int rows, int cols) {
  __m512 c[8][2];
  for (int r = 0; r < 8; ++r) { c[r][0] = _mm512_setzero_ps(); c[r][1] = _mm512_setzero_ps(); }
  for (i64 k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_loadu_ps(B + k * 32), b1 = _mm512_loadu_ps(B + k * 32 + 16);
    const float* a = A + k * 8;
    _Pragma("GCC unroll 8") for (int r = 0; r < 8; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      c[r][0] = _mm512_fmadd_ps(av, b0, c[r][0]);
      c[r][1] = _mm512_fmadd_ps(av, b1, c[r][1]);
    }
  }
  float tmp[32];
  for (int r = 0; r < rows; ++r) {
    _mm512_storeu_ps(tmp, c[r][0]);
    _mm512_storeu_ps(tmp + 16, c[r][1]);
    memcpy(C + r * ldc, tmp, (size_t)cols * sizeof(float));
  }
}
#endif

static void kernel(int isa, i64 K, const float* A, const float* B, float* C, i64 ldc, int rows, int cols,
                   int MR, int NR) {
#ifdef LMMCL_X86
  if (isa == ISA_AVX512) { kern_avx512(K, A, B, C, ldc, rows, cols); return; }
  if (isa == ISA_AVX2) { kern_avx2(K, A, B, C, ldc, rows, cols); return; }
#endif
  kern_generic(K, A, B, C, ldc, rows, cols, MR, NR);
}

/* C[b] = A[b] @ B[b] for b < batch. Returns 0, or -1 if memory ran out. */
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
  int MR, NR;
  block_shape(isa, &MR, &NR);
  const i64 nb = (N + NR - 1) / NR, mb = (M + MR - 1) / MR, panel = K * NR;
  float* Bp = (float*)malloc((size_t)(batch * nb * panel) * sizeof(float));
  if (!Bp) return -1;
  int failed = 0;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1)
  for (i64 w = 0; w < batch * nb; ++w) {
    const i64 t = w / nb, p = w % nb;
    const int cols = (int)(N - p * NR < NR ? N - p * NR : NR);
    pack_b(b + t * sbb + p * NR * sb1, sb0, sb1, K, cols, NR, Bp + w * panel);
  }
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    float* Ap = (float*)malloc((size_t)(K * MR) * sizeof(float));
    if (!Ap) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (i64 w = 0; w < batch * mb; ++w) {
      if (!Ap) continue;
      const i64 t = w / mb, q = w % mb;
      const int rows = (int)(M - q * MR < MR ? M - q * MR : MR);
      pack_a(a + t * sab + q * MR * sa0, sa0, sa1, K, rows, MR, Ap);
      for (i64 p = 0; p < nb; ++p) {
        const int cols = (int)(N - p * NR < NR ? N - p * NR : NR);
        kernel(isa, K, Ap, Bp + (t * nb + p) * panel, c + t * scb + q * MR * ldc + p * NR, ldc, rows, cols, MR, NR);
      }
    }
    free(Ap);
  }
  free(Bp);
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
