/* Elementwise math functions with the same bits on every CPU (lmmcl.numerics, docs/reproducibility.md).
 *
 * torch's CPU kernels for sqrt, exp, log, log2, log10, sin, cos, tan, tanh, erf, erfc, erfinv, asin,
 * acos and atan (float32 and float64) call oneMKL's vector math (VML), whose code paths are chosen
 * per CPU: its float32 square root, for one, starts from the `rsqrtps` estimate, which Intel and
 * AMD implement differently, and gives other last bits on the two (measured in the doc above).
 * Here instead:
 * - sqrt is the IEEE 754 square root (sqrtf / sqrt), correctly rounded: one result on any CPU;
 * - float32 functions are the C library's double-precision function of the (exact) double input,
 *   rounded to float32; float64 ones the C library's double function. Plain scalar code, built
 *   without -ffast-math (no vector libm variants), so the bits depend on the C library alone
 *   (glibc's libm picks the same code on every x86-64 CPU with FMA);
 * - erfinv (no C library has it): an initial approximation refined by Newton steps on erf/erfc.
 * Each element is computed on its own: threads split the array, never a computation.
 */
#include <math.h>
#include <stdint.h>

typedef int64_t i64;

enum {
  OP_SQRT, OP_EXP, OP_LOG, OP_LOG2, OP_LOG10, OP_SIN, OP_COS, OP_TAN, OP_TANH,
  OP_ERF, OP_ERFC, OP_ERFINV, OP_ASIN, OP_ACOS, OP_ATAN, OP_COUNT
};

int lmmcl_unary_op_count(void) { return OP_COUNT; }

/* erfinv(y) for |y| < 1: M. Giles, "Approximating the erfinv function" (GPU Computing Gems, 2011),
 * single-precision version (relative error below 4e-7) as the start, then Newton steps
 * x -= (erf(x) - y) / erf'(x), with erfc(|x|) - (1 - |y|) in the tails, where 1 - |y| is exact
 * and erf(x) - y would cancel. */
static double erfinv_d(double y) {
  if (isnan(y) || y < -1.0 || y > 1.0) return NAN;
  if (y == 1.0) return INFINITY;
  if (y == -1.0) return -INFINITY;
  if (y == 0.0) return y; /* keeps the sign of -0 */
  double a = fabs(y), w = -log((1.0 - a) * (1.0 + a)), p;
  if (w < 5.0) {
    w -= 2.5;
    p = 2.81022636e-08;
    p = 3.43273939e-07 + p * w;
    p = -3.5233877e-06 + p * w;
    p = -4.39150654e-06 + p * w;
    p = 0.00021858087 + p * w;
    p = -0.00125372503 + p * w;
    p = -0.00417768164 + p * w;
    p = 0.246640727 + p * w;
    p = 1.50140941 + p * w;
  } else {
    w = sqrt(w) - 3.0;
    p = -0.000200214257;
    p = 0.000100950558 + p * w;
    p = 0.00134934322 + p * w;
    p = -0.00367342844 + p * w;
    p = 0.00573950773 + p * w;
    p = -0.0076224613 + p * w;
    p = 0.00943887047 + p * w;
    p = 1.00167406 + p * w;
    p = 2.83297682 + p * w;
  }
  double x = p * a;
  const double two_over_sqrt_pi = 1.1283791670955126;
  for (int i = 0; i < 3; ++i) {
    double d = two_over_sqrt_pi * exp(-x * x);
    if (d == 0.0) break;
    double f = a > 0.5 ? (1.0 - a) - erfc(x) : erf(x) - a;
    x -= f / d;
  }
  return y < 0 ? -x : x;
}

static double apply_d(int op, double x) {
  switch (op) {
    case OP_SQRT: return sqrt(x);
    case OP_EXP: return exp(x);
    case OP_LOG: return log(x);
    case OP_LOG2: return log2(x);
    case OP_LOG10: return log10(x);
    case OP_SIN: return sin(x);
    case OP_COS: return cos(x);
    case OP_TAN: return tan(x);
    case OP_TANH: return tanh(x);
    case OP_ERF: return erf(x);
    case OP_ERFC: return erfc(x);
    case OP_ERFINV: return erfinv_d(x);
    case OP_ASIN: return asin(x);
    case OP_ACOS: return acos(x);
    case OP_ATAN: return atan(x);
  }
  return NAN;
}

/* y[i] = op(x[i]) for i < n (contiguous arrays; y may be x); returns -1 for an unknown op. */
int lmmcl_unary_f32(int op, i64 n, const float* x, float* y, int threads) {
  if (op < 0 || op >= OP_COUNT) return -1;
  if (op == OP_SQRT) {
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 65536)
    for (i64 i = 0; i < n; ++i) y[i] = sqrtf(x[i]);
    return 0;
  }
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 4096)
  for (i64 i = 0; i < n; ++i) y[i] = (float)apply_d(op, (double)x[i]);
  return 0;
}

int lmmcl_unary_f64(int op, i64 n, const double* x, double* y, int threads) {
  if (op < 0 || op >= OP_COUNT) return -1;
#pragma omp parallel for num_threads(threads) schedule(static) if (threads > 1 && n > 4096)
  for (i64 i = 0; i < n; ++i) y[i] = apply_d(op, x[i]);
  return 0;
}
