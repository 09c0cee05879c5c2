// Baseline: z[i] = x[i] + y[i], the loop anyone would write, split over `nt` OpenMP threads.
// -O3 -march=native vectorises it (AVX2 on this machine).
#include <stdint.h>

void c_vector_add(const float *restrict x, const float *restrict y, float *restrict z, int64_t n,
                  int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i];
}
