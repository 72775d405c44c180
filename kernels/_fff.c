/* Fast feedforward (FFF, UltraSparseBERT) forward on the CPU: the per-token level-by-level walk.
 *
 * Every token descends each of K trees from the root: one dot product with the node's input weight
 * row (the node logit), GELU, one scaled add of the node's output weight row, then the child chosen
 * by the logit's sign (heap numbering: children of n are 2n+1 and 2n+2). This is conditional matrix
 * multiplication (CMM, Belcak & Wattenhofer 2023, Algorithm 1) fused with the output accumulation, so
 * a token touches only K*(D+1) of the K*(2^(D+1)-1) weight rows and nothing is materialised.
 *
 * Why tiles of TILE tokens walked together: one token's walk is a chain (the next row to load depends
 * on the current dot product), so a token at a time leaves the core waiting on loads and on the
 * reduction. Interleaving the dot products of TILE independent tokens keeps TILE row streams in
 * flight; it halved the time at the paper's size (H 768, depth 11) on the dev machine (TILE 8..32
 * measured alike). 16-wide vector extensions compile to AVX-512, AVX2 or SSE as -march allows.
 *
 * Layout: x [T,H], w_in [K*N,H], b_in [K*N] (may be NULL), w_out [K*N,H], y [T,H], all float32 and
 * row-major; nodes/logits [T,K,D+1] (may be NULL) receive each visited node's global row index
 * k*N+n and its logit, which the trainer's backward pass and the load statistics need.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TILE 16
typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float *p) {
  v16 v;
  memcpy(&v, p, sizeof v); /* unaligned load */
  return v;
}

static inline float hsum16(v16 v) {
  float s = 0.f;
  for (int j = 0; j < 16; ++j) s += v[j];
  return s;
}

int fff_walk(const float *restrict x, int64_t T, int64_t H, const float *restrict w_in,
             const float *restrict b_in, const float *restrict w_out, int64_t K, int64_t D,
             float *restrict y, int64_t *restrict nodes, float *restrict logits, int nthreads) {
  if (T < 0 || H <= 0 || K <= 0 || D < 0 || D > 40) return 1;
  const int64_t L = D + 1, N = (((int64_t)1) << L) - 1, Hv = H / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (int64_t t0 = 0; t0 < T; t0 += TILE) {
    const int nt = (int)(T - t0 < TILE ? T - t0 : TILE);
    const float *xt[TILE];
    for (int i = 0; i < TILE; ++i) xt[i] = x + (t0 + (i < nt ? i : nt - 1)) * H; /* tail: repeat a row */
    memset(y + t0 * H, 0, sizeof(float) * (size_t)(H * nt));
    for (int64_t k = 0; k < K; ++k) {
      int64_t node[TILE] = {0};
      for (int64_t l = 0; l < L; ++l) {
        const float *w[TILE];
        v16 acc[TILE];
        for (int i = 0; i < TILE; ++i) {
          w[i] = w_in + (k * N + node[i]) * H;
          acc[i] = (v16){0};
        }
        for (int64_t h = 0; h < Hv; h += 16)
          for (int i = 0; i < TILE; ++i) acc[i] += load16(xt[i] + h) * load16(w[i] + h);
        for (int i = 0; i < nt; ++i) {
          const int64_t g = k * N + node[i];
          float s = hsum16(acc[i]);
          for (int64_t h = Hv; h < H; ++h) s += xt[i][h] * w[i][h];
          if (b_in) s += b_in[g];
          const float a = 0.5f * s * (1.f + erff(s * 0.70710678118654752f)); /* exact (erf) GELU */
          const float *v = w_out + g * H;
          float *yt = y + (t0 + i) * H;
#pragma omp simd
          for (int64_t h = 0; h < H; ++h) yt[h] += a * v[h];
          if (nodes) nodes[((t0 + i) * K + k) * L + l] = g;
          if (logits) logits[((t0 + i) * K + k) * L + l] = s;
          node[i] = 2 * node[i] + 1 + (s > 0.f);
        }
      }
    }
  }
  return 0;
}
