// Baseline: row softmax written the naive way, one row per iteration, rows split over `nt`
// OpenMP threads. NOTE: it calls the scalar libm expf once per element and its sum is a serial
// float reduction (no -ffast-math, so GCC vectorises neither). That is what a straightforward C
// version looks like, and it is about an order of magnitude slower than torch.softmax, which uses
// a vectorised exp: the bar for tk's softmax is therefore torch, not this.
#include <math.h>

void c_softmax(const float *restrict x, float *restrict y, int rows, int cols, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (long)r * cols;
        float *yr = y + (long)r * cols;
        float m = -INFINITY;
        for (int c = 0; c < cols; c++) m = xr[c] > m ? xr[c] : m;
        float s = 0.0f;
        for (int c = 0; c < cols; c++) {
            float e = expf(xr[c] - m);
            yr[c] = e;
            s += e;
        }
        float inv = 1.0f / s;
        for (int c = 0; c < cols; c++) yr[c] *= inv;
    }
}
