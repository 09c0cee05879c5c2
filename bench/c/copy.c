// The same-run copy bandwidth that memory-bound kernels are compared with: `nt` OpenMP threads
// each copy one contiguous half (third, ...) of a buffer, once with glibc memcpy (which switches
// to non-temporal stores for large copies) and once with a plain loop (ordinary stores, which
// also read the destination line first, like the kernels' stores do). The reference is the
// faster of the two.
#include <omp.h>
#include <stdint.h>
#include <string.h>

void c_copy_memcpy(float *restrict dst, const float *restrict src, int64_t n, int nt) {
#pragma omp parallel num_threads(nt)
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof(float));
    }
}

// Keep GCC from turning the loop back into a memcpy call.
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void
c_copy_loop(float *restrict dst, const float *restrict src, int64_t n, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t i = 0; i < n; i++) dst[i] = src[i];
}
