/* Unstructured (CSR) sparse x dense product for CPU, float32, row-major, cache-blocked over tokens.
 *
 *   csr_spmm_t: YT[r, i] = sum_{p in row r} val[p] * XT[col[p], i]      for i in [0, m)
 *               YT = W XT for W (n x k) in CSR and XT (k x m): Y^T of the forward Y = X W^T when
 *               XT = X^T, and dX^T = W^T dY^T when W's transposed structure is passed.
 *
 * Why hand-written: MKL's CSR mm (torch.sparse.mm, sparse_dot_mkl) streams the m-long rows of XT named
 * by each nonzero from wherever XT lives; for the bert-base FFN (512 tokens, 768 -> 3072) XT is 1.5 MB,
 * larger than a Zen 3 core's 512 KB L2, and MKL's SpMM runs at the L3's copy bandwidth (~23 GB/s, 2.5x
 * over dense at 95 % sparsity). Here the tokens are cut into chunks whose slice of XT (k rows of TB
 * floats) stays in L2 while every sparse row is applied to it: each nonzero is one broadcast and TB/VL
 * FMAs on vectors read from L2, the chunk's output row is kept in registers and written once.
 * The chunk width is fixed by the ISA (8 vectors of 16 or 8 floats: 8 independent FMA chains, enough
 * to cover the FMA latency). For large k the slice would outgrow CHUNK_BYTES, so k is cut into panels
 * whose slice fits, and each row's output chunk sums its panels. Narrowing the chunk instead (as the
 * first version did) left 2 accumulators for k = 3072: every nonzero then waited on the latency of
 * the previous FMA, measured 2-4x slower per FLOP than the 8-chain chunk.
 * Column indices must be ascending within each row (canonical CSR, as torch and scipy build it): a
 * panel is a contiguous range of each row's nonzeros.
 */
#include <stdint.h>
#include <stdlib.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
#define BCAST(x) ((vf)_mm512_set1_ps(x))
#elif defined(__AVX__)
#include <immintrin.h>
#define VL 8
#define BCAST(x) ((vf)_mm256_set1_ps(x))
#else
#define VL 4
#define BCAST(x) ((vf){} + (x))
#endif
#define NA_MAX 8                    /* accumulators per chunk row: 8 of 16 vector registers with AVX2 */
#define CHUNK_BYTES (192 * 1024)    /* XT slice per chunk: within a 512 KB L2 with room for W's stream */

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));

static inline vf load(const float *p) { return *(const vfu *)p; }
static inline void store(float *p, vf v) { *(vfu *)p = v; }

/* One sparse row's nonzeros [p0, p1) applied to a full chunk of NA vectors; the chunk's output row is
 * stored (first panel) or added to (later panels). NA compile-time after inlining. */
static inline __attribute__((always_inline)) void
row_chunk(const int NA, const int32_t *col, const float *val, int64_t p0, int64_t p1, const float *XT,
          int64_t ldxt, float *y, int add) {
    vf acc[NA_MAX];
    for (int a = 0; a < NA; a++) acc[a] = add ? load(y + a * VL) : (vf){};
    for (int64_t p = p0; p < p1; p++) {
        const vf v = BCAST(val[p]);
        const float *x = XT + (int64_t)col[p] * ldxt;
        for (int a = 0; a < NA; a++) acc[a] += v * load(x + a * VL);
    }
    for (int a = 0; a < NA; a++) store(y + a * VL, acc[a]);
}

static void row_chunk_full(const int32_t *c, const float *v, int64_t p0, int64_t p1, const float *X, int64_t l,
                           float *y, int add) {
    row_chunk(NA_MAX, c, v, p0, p1, X, l, y, add);
}

/* The last, narrower chunk: plain loops (a few tokens). */
static void row_tail(const int32_t *col, const float *val, int64_t p0, int64_t p1, const float *XT, int64_t ldxt,
                     float *y, int64_t w, int add) {
    if (!add)
        for (int64_t i = 0; i < w; i++) y[i] = 0.f;
    for (int64_t p = p0; p < p1; p++) {
        const float v = val[p];
        const float *x = XT + (int64_t)col[p] * ldxt;
        for (int64_t i = 0; i < w; i++) y[i] += v * x[i];
    }
}

/* Where each row's nonzeros of each k panel start: ps[r * (np + 1) + j], j = 0..np (ps[.. + np] = row end).
 * Returns 0, or 2 if a row's column indices are not ascending or out of range. */
static int panel_starts(const int32_t *row_ptr, const int32_t *col, int64_t n, int64_t k, int64_t kp, int64_t np,
                        int32_t *ps, int nthreads) {
    int bad = 0;
    #pragma omp parallel for schedule(static) num_threads(nthreads) reduction(|:bad)
    for (int64_t r = 0; r < n; r++) {
        int32_t *s = ps + r * (np + 1);
        int64_t p = row_ptr[r];
        const int64_t p1 = row_ptr[r + 1];
        int64_t prev = -1;
        for (int64_t j = 0; j < np; j++) {
            s[j] = (int32_t)p;
            const int64_t hi = (j + 1) * kp;
            while (p < p1 && col[p] < hi) {
                bad |= col[p] <= prev || col[p] < 0;
                prev = col[p++];
            }
        }
        s[np] = (int32_t)p1;
        bad |= p != p1 || (p1 > row_ptr[r] && col[p1 - 1] >= k);
    }
    return bad ? 2 : 0;
}

/* k panels for a product with k columns of W (tests check that their cases cut k). */
int csr_panels(int64_t k) {
    const int64_t np = (k * NA_MAX * VL * 4 + CHUNK_BYTES - 1) / CHUNK_BYTES;
    return np < 1 ? 1 : (int)np;
}

int csr_spmm_t(const float *XT, int64_t k, int64_t m, int64_t ldxt, const int32_t *row_ptr, const int32_t *col,
               const float *val, int64_t n, float *YT, int64_t ldyt, int nthreads) {
    if (k <= 0 || m < 0 || n < 0) return 1;
    const int64_t tb = (int64_t)NA_MAX * VL, chunks = (m + tb - 1) / tb;
    const int64_t np = csr_panels(k);  /* panels of at most CHUNK_BYTES of XT slice */
    const int64_t kp = (k + np - 1) / np;
    int32_t *ps = NULL;
    if (np > 1) {
        ps = malloc((size_t)n * (size_t)(np + 1) * sizeof(int32_t));
        if (!ps) return 3;
        if (panel_starts(row_ptr, col, n, k, kp, np, ps, nthreads)) { free(ps); return 2; }
    }
    #pragma omp parallel num_threads(nthreads)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t i0 = c * tb, w = m - i0 < tb ? m - i0 : tb;
        for (int64_t j = 0; j < np; j++) {
            /* a row's chunk sums its panels in order: the barrier after each panel (below) keeps a later
             * panel of a row from starting before the earlier one, whichever thread runs it */
            #pragma omp for schedule(dynamic, 16) nowait
            for (int64_t r = 0; r < n; r++) {
                const int64_t p0 = ps ? ps[r * (np + 1) + j] : row_ptr[r];
                const int64_t p1 = ps ? ps[r * (np + 1) + j + 1] : row_ptr[r + 1];
                float *y = YT + r * ldyt + i0;
                if (w < tb) row_tail(col, val, p0, p1, XT + i0, ldxt, y, w, j > 0);
                else row_chunk_full(col, val, p0, p1, XT + i0, ldxt, y, j > 0);
            }
            if (np > 1) {
                #pragma omp barrier
            }
        }
    }
    free(ps);
    return 0;
}

/* The vector width this build chose (tests check it against the CPU's ISA). */
int csr_config(void) { return VL; }
