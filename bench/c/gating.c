// Baseline: MoE top-k gating. For each token: softmax over its expert logits (scalar expf),
// then the k largest probabilities and their expert ids, found by k selection passes; ties go
// to the lower expert id (strict `>` while scanning upwards), as tk's topk. Tokens are split
// over `nt` OpenMP threads. Needs experts <= 1024.
#include <math.h>
#include <stdint.h>

void c_topk_gating(const float *restrict logits, float *restrict weights, int32_t *restrict ids,
                   int tokens, int experts, int k, int nt) {
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int t = 0; t < tokens; t++) {
        const float *x = logits + (long)t * experts;
        float p[1024];
        unsigned char taken[1024];
        float m = -INFINITY;
        for (int e = 0; e < experts; e++) m = x[e] > m ? x[e] : m;
        float s = 0.0f;
        for (int e = 0; e < experts; e++) {
            p[e] = expf(x[e] - m);
            s += p[e];
            taken[e] = 0;
        }
        float inv = 1.0f / s;
        for (int e = 0; e < experts; e++) p[e] *= inv;
        for (int j = 0; j < k; j++) {
            int best = -1;
            for (int e = 0; e < experts; e++)
                if (!taken[e] && (best < 0 || p[e] > p[best])) best = e;
            taken[best] = 1;
            weights[(long)t * k + j] = p[best];
            ids[(long)t * k + j] = best;
        }
    }
}
