// Baseline: RMSNorm over rows, y = x / sqrt(mean(x^2) + eps) * w. One pass for the sum of
// squares (`omp simd reduction` lets it vectorise without -ffast-math), one to write. Rows are
// split over `nt` OpenMP threads.
#include <math.h>

void c_rmsnorm(const float *restrict x, const float *restrict w, float *restrict y, int rows,
               int cols, float eps, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        float *yr = y + (long)r * cols;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < cols; c++) s += xr[c] * xr[c];
        float inv = 1.0f / sqrtf(s / (float)cols + eps);
#pragma omp simd
        for (int c = 0; c < cols; c++) yr[c] = xr[c] * inv * w[c];
    }
}
