// OpenBLAS sgemm, the matmul baseline: C[M,N] = A[M,K] @ B[K,N], row-major, on `nt` threads;
// and a line naming the OpenBLAS build and the kernel core it picked (OPENBLAS_CORETYPE changes
// that, so the benchmark reports it).
#include <cblas.h>
#include <stdio.h>

extern char *openblas_get_config(void);
extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);
extern int openblas_get_num_threads(void);

void c_sgemm(const float *a, const float *b, float *c, int m, int n, int k, int nt) {
    openblas_set_num_threads(nt);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n);
}

void c_blas_info(char *buf, int len) {
    snprintf(buf, (size_t)len, "%s, core %s, %d threads", openblas_get_config(),
             openblas_get_corename(), openblas_get_num_threads());
}
