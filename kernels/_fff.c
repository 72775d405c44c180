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
 * measured alike). The dot products use vectors of the ISA's own width and TILE accumulators that fit
 * its register file: 16-float vectors with AVX-512 (32 zmm), 8-float with AVX2 (16 ymm). A 16-float
 * type on an AVX2 machine is split in ymm halves and 16 of them spill: on a Zen 3 (family 25 model 1) the
 * walk ran 6-8x slower than on the Zen 5 in the 2048-token sweep cases, where dense GEMM is 2-2.5x slower.
 *
 * Layout: x [T,H], w_in [K*N,H], b_in [K*N] (may be NULL), w_out [K*N,H], y [T,H], all float32 and
 * row-major; nodes/logits [T,K,D+1] (may be NULL) receive each visited node's global row index
 * k*N+n and its logit, which the trainer's backward pass and the load statistics need.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__)
#define VW 16
#define TILE 16
#elif defined(__AVX__)
#define VW 8
#define TILE 8
#else
#define VW 4
#define TILE 8
#endif
typedef float vec __attribute__((vector_size(VW * 4)));

static inline vec loadv(const float *p) {
  vec v;
  memcpy(&v, p, sizeof v); /* unaligned load */
  return v;
}

static inline float hsum(vec v) {
  float s = 0.f;
  for (int j = 0; j < VW; ++j) s += v[j];
  return s;
}

int fff_walk(const float *restrict x, int64_t T, int64_t H, const float *restrict w_in,
             const float *restrict b_in, const float *restrict w_out, int64_t K, int64_t D,
             float *restrict y, int64_t *restrict nodes, float *restrict logits, int nthreads) {
  if (T < 0 || H <= 0 || K <= 0 || D < 0 || D > 40) return 1;
  const int64_t L = D + 1, N = (((int64_t)1) << L) - 1, Hv = H / VW * VW;
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
        vec acc[TILE];
        for (int i = 0; i < TILE; ++i) {
          w[i] = w_in + (k * N + node[i]) * H;
          acc[i] = (vec){0};
        }
        for (int64_t h = 0; h < Hv; h += VW)
          for (int i = 0; i < TILE; ++i) acc[i] += loadv(xt[i] + h) * loadv(w[i] + h);
        for (int i = 0; i < nt; ++i) {
          const int64_t g = k * N + node[i];
          float s = hsum(acc[i]);
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

/* The vector width and token tile this build chose (tests check them against the CPU's ISA). */
int fff_config(int what) { return what == 0 ? VW : what == 1 ? TILE : -1; }
