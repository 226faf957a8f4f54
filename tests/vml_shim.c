/* Preloaded in front of libtorch_cpu's oneMKL vector math (VML) by tests/test_numerics.py.
 *
 * Every VML function ATen calls (vmsSqrt, vmdExp, ...) is counted, then forwarded to oneMKL's.
 * With LMMCL_VML_SHIM=perturb its results are also moved by one unit in the last place, as
 * another CPU's VML code path may round them (docs/reproducibility.md): a same-machine stand-in
 * for a second machine. At exit the counts go to the file $LMMCL_VML_LOG ("name calls elements").
 * Build: cc -shared -fPIC -O1 -o vml_shim.so vml_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* oneMKL's vm[sd]<Func>(n, a, r, mode) as ATen calls them (LP64: a 32-bit n) */
typedef void (*vml_fn)(int n, const void* a, void* r, long long mode);

#define FUNCS(X)                                                                                  \
  X(vmsSqrt) X(vmsExp) X(vmsLn) X(vmsLog2) X(vmsLog10) X(vmsSin) X(vmsCos) X(vmsTan) X(vmsTanh)   \
  X(vmsErf) X(vmsErfc) X(vmsErfInv) X(vmsAsin) X(vmsAcos) X(vmsAtan) X(vmsTrunc)                   \
  X(vmdSqrt) X(vmdExp) X(vmdLn) X(vmdLog2) X(vmdLog10) X(vmdSin) X(vmdCos) X(vmdTan) X(vmdTanh)   \
  X(vmdErf) X(vmdErfc) X(vmdErfInv) X(vmdAsin) X(vmdAcos) X(vmdAtan) X(vmdTrunc)

#define NAME(f) #f,
static const char* names[] = {FUNCS(NAME)};
enum { NFUNCS = sizeof(names) / sizeof(names[0]) };
static long long calls[NFUNCS], elements[NFUNCS];

static vml_fn real(int i) {
  static vml_fn cache[NFUNCS];
  if (!cache[i]) {
    void* h = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
    cache[i] = h ? (vml_fn)dlsym(h, names[i]) : NULL;
    if (!cache[i]) {
      fprintf(stderr, "vml_shim: no %s in libtorch_cpu.so\n", names[i]);
      abort();
    }
  }
  return cache[i];
}

static void call(int i, int n, const void* a, void* r, long long mode) {
  __atomic_add_fetch(&calls[i], 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&elements[i], n, __ATOMIC_RELAXED);
  real(i)(n, a, r, mode);
  const char* shim = getenv("LMMCL_VML_SHIM");
  if (shim && strcmp(shim, "perturb") == 0) {
    if (names[i][2] == 's')
      for (int k = 0; k < n; ++k) ((uint32_t*)r)[k] ^= 1u;
    else
      for (int k = 0; k < n; ++k) ((uint64_t*)r)[k] ^= 1u;
  }
}

#define DEFINE(f)                                                                                 \
  void f(int n, const void* a, void* r, long long mode) { call(index_##f, n, a, r, mode); }
#define INDEX(f) index_##f,
enum { FUNCS(INDEX) };
FUNCS(DEFINE)

__attribute__((destructor)) static void report(void) {
  const char* path = getenv("LMMCL_VML_LOG");
  FILE* f = path ? fopen(path, "w") : NULL;
  if (!f) return;
  for (int i = 0; i < NFUNCS; ++i)
    if (calls[i]) fprintf(f, "%s %lld %lld\n", names[i], calls[i], elements[i]);
  fclose(f);
}
