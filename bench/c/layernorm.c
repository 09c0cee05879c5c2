// Baseline: LayerNorm over rows, y = (x - mean) / sqrt(var + eps) * w + b with the biased
// variance (as torch.nn.functional.layer_norm). Two passes over each row for mean and variance,
// a third to write; `omp simd reduction` lets the float sums vectorise without -ffast-math.
// Rows are split over `nt` OpenMP threads.
#include <math.h>

void c_layernorm(const float *restrict x, const float *restrict w, const float *restrict b,
                 float *restrict y, int rows, int cols, float eps, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        float *yr = y + (long)r * cols;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int c = 0; c < cols; c++) s += xr[c];
        float mean = s / (float)cols;
        float v = 0.0f;
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < cols; c++) {
            float d = xr[c] - mean;
            v += d * d;
        }
        float inv = 1.0f / sqrtf(v / (float)cols + eps);
#pragma omp simd
        for (int c = 0; c < cols; c++) yr[c] = (xr[c] - mean) * inv * w[c] + b[c];
    }
}
