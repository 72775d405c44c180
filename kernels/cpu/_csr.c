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
 * The chunk width follows the ISA (8 vectors of 16 or 8 floats) and shrinks for large k so the slice
 * stays within CHUNK_BYTES.
 */
#include <stdint.h>

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

/* One sparse row applied to a full chunk of NA vectors; NA compile-time after inlining. */
static inline __attribute__((always_inline)) void
row_chunk(const int NA, const int32_t *col, const float *val, int64_t p0, int64_t p1, const float *XT,
          int64_t ldxt, float *y) {
    vf acc[NA_MAX];
    for (int a = 0; a < NA; a++) acc[a] = (vf){};
    for (int64_t p = p0; p < p1; p++) {
        const vf v = BCAST(val[p]);
        const float *x = XT + (int64_t)col[p] * ldxt;
        for (int a = 0; a < NA; a++) acc[a] += v * load(x + a * VL);
    }
    for (int a = 0; a < NA; a++) store(y + a * VL, acc[a]);
}

static void row_chunk_1(const int32_t *c, const float *v, int64_t p0, int64_t p1, const float *X, int64_t l, float *y) {
    row_chunk(1, c, v, p0, p1, X, l, y);
}
static void row_chunk_2(const int32_t *c, const float *v, int64_t p0, int64_t p1, const float *X, int64_t l, float *y) {
    row_chunk(2, c, v, p0, p1, X, l, y);
}
static void row_chunk_4(const int32_t *c, const float *v, int64_t p0, int64_t p1, const float *X, int64_t l, float *y) {
    row_chunk(4, c, v, p0, p1, X, l, y);
}
static void row_chunk_8(const int32_t *c, const float *v, int64_t p0, int64_t p1, const float *X, int64_t l, float *y) {
    row_chunk(8, c, v, p0, p1, X, l, y);
}

/* The last, narrower chunk: plain loops (a few tokens). */
static void row_tail(const int32_t *col, const float *val, int64_t p0, int64_t p1, const float *XT, int64_t ldxt,
                     float *y, int64_t w) {
    for (int64_t i = 0; i < w; i++) y[i] = 0.f;
    for (int64_t p = p0; p < p1; p++) {
        const float v = val[p];
        const float *x = XT + (int64_t)col[p] * ldxt;
        for (int64_t i = 0; i < w; i++) y[i] += v * x[i];
    }
}

int csr_spmm_t(const float *XT, int64_t k, int64_t m, int64_t ldxt, const int32_t *row_ptr, const int32_t *col,
               const float *val, int64_t n, float *YT, int64_t ldyt, int nthreads) {
    if (k <= 0 || m < 0 || n < 0) return 1;
    int na = NA_MAX;
    while (na > 1 && (int64_t)na * VL * 4 * k > CHUNK_BYTES) na /= 2;
    const int64_t tb = (int64_t)na * VL, chunks = (m + tb - 1) / tb;
    #pragma omp parallel for collapse(2) schedule(dynamic, 16) num_threads(nthreads)
    for (int64_t c = 0; c < chunks; c++) {
        for (int64_t r = 0; r < n; r++) {
            const int64_t i0 = c * tb, w = m - i0 < tb ? m - i0 : tb;
            const int64_t p0 = row_ptr[r], p1 = row_ptr[r + 1];
            float *y = YT + r * ldyt + i0;
            const float *x = XT + i0;
            if (w < tb) row_tail(col, val, p0, p1, x, ldxt, y, w);
            else if (na == 8) row_chunk_8(col, val, p0, p1, x, ldxt, y);
            else if (na == 4) row_chunk_4(col, val, p0, p1, x, ldxt, y);
            else if (na == 2) row_chunk_2(col, val, p0, p1, x, ldxt, y);
            else row_chunk_1(col, val, p0, p1, x, ldxt, y);
        }
    }
    return 0;
}

/* The vector width this build chose (tests check it against the CPU's ISA). */
int csr_config(void) { return VL; }
