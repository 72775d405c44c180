/* Block-sparse products for CPU (b x b blocks, b in {16, 32}), float32, row-major.
 *
 * Why hand-written: MKL's BSR mm (through torch.sparse and sparse_dot_mkl alike) reaches only
 * ~2.5x over dense MKL at 90 % sparsity with 32x32 blocks on this machine, far from the 10x the
 * FLOPs allow, and the BLAS formulations (gather the blocks, batched GEMM) spend as long copying
 * gathered operands as multiplying them. These kernels read the dense operand in place and keep an
 * MR x b output tile in vector registers (GCC vector extensions of the ISA's own width).
 *
 *   bs_linear: Y[i, r*b+o] = sum_{j in row r} sum_t X[i, col[j]*b+t] * BT[j][t][o]
 *              Y = X W^T when BT[j] is the transposed block j of W; with the transposed block
 *              structure and untransposed blocks the same call computes dX = dY W.
 *   bs_sddmm:  G[j][o][t]  = sum_i A[i, brow[j]*b+o] * X[i, bcol[j]*b+t]
 *              the weight gradient A^T X at the nonzero blocks only.
 *
 * Why the width and the tile height follow the ISA: the accumulators of an MR x b tile, the b/VL
 * vectors of the current weight row and a broadcast must fit the register file (32 zmm with AVX-512,
 * 16 ymm with AVX2). A 64-byte vector type on an AVX2 machine is split into ymm halves and the
 * 16-row tile spills on every FMA: on a Zen 3 (family 25 model 1, no AVX-512) it ran a median 7x (up to
 * 28x) slower than with these settings, slower than dense MKL from ~5 % density up. MR_SD must divide b
 * (sddmm tiles the b output rows of a block); MR (token rows) need not.
 *
 * Why bs_linear loops token chunk > group of block rows > token tile > block row (the GotoBLAS order):
 * a group's weights stay in L2 while every tile of the chunk passes them, the chunk's X rows stay in L3
 * while all groups pass, and each tile writes its output rows in runs of a whole group. The first AVX2
 * version looped block row outermost with all tokens inside: it re-read X from memory for every block
 * row and wrote Y in 64-byte pieces one row apart, a latency-bound miss each, so at 2048 tokens its time
 * was far from linear in density. bs_sddmm sums over token chunks for the same reason: a block reads one
 * cache line per token row of dY and of X, from L3 within a chunk rather than from memory. Same-case
 * timings before and after: benchmarks/results/zen3/kernel-order.json.
 */
#include <stdint.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#define VL 16
#define MR16 16 /* 16 x 1 accumulators */
#define MR32 8  /* 8 x 2 */
#define MR_SD16 16
#define MR_SD32 8
/* set1 lets GCC fold the broadcast into the FMA as an embedded {1to16} memory operand; the generic
 * splat below costs a scalar load plus a shuffle per FMA, which halved the 16x16 kernel's speed. */
#define BCAST(x) ((vf)_mm512_set1_ps(x))
#elif defined(__AVX__)
#include <immintrin.h>
#define VL 8
#define MR16 6 /* 6 x 2 accumulators + 2 weight vectors + 1 broadcast of 16 ymm */
#define MR32 3 /* 3 x 4 + 4 weight vectors (the compiler may fold them into the FMAs) */
#define MR_SD16 4
#define MR_SD32 2
#define BCAST(x) ((vf)_mm256_set1_ps(x))
#else
#define VL 4
#define MR16 3
#define MR32 1
#define MR_SD16 2
#define MR_SD32 1
#define BCAST(x) ((vf){} + (x))
#endif
#define NV_MAX (32 / VL) /* b / VL for the largest supported b */
#define MR_MAX (MR16 > MR32 ? MR16 : MR32)
#define GROUP_BYTES (256 * 1024) /* weights of one group of block rows: half of a 512 KB L2 */
#define CHUNK_BYTES (1 << 20)    /* X rows of one token chunk: a small share of the L3 */
#define SD_CHUNK_MIN 128         /* sddmm: token rows per chunk at least (each chunk re-reads G) */

typedef float vf __attribute__((vector_size(VL * 4)));
typedef float vfu __attribute__((vector_size(VL * 4), aligned(4)));

static inline vf load(const float *p) { return *(const vfu *)p; }
static inline void store(float *p, vf v) { *(vfu *)p = v; }
static inline vf bcast(float x) { return BCAST(x); }

/* MR rows of one block row of Y; B, MR compile-time after inlining, rows <= MR. */
static inline __attribute__((always_inline)) void
linear_tile(const int B, const int MR, const int rows, const float *X, int64_t ldx,
            const int32_t *col, const float *BT, int nblk, float *Y, int64_t ldy) {
    vf acc[MR_MAX][NV_MAX];
    for (int ii = 0; ii < MR; ii++)
        for (int v = 0; v < B / VL; v++) acc[ii][v] = (vf){};
    for (int j = 0; j < nblk; j++) {
        const float *xb = X + (int64_t)col[j] * B;
        const float *wb = BT + (int64_t)j * B * B;
        for (int t = 0; t < B; t++) {
            vf w[NV_MAX];
            for (int v = 0; v < B / VL; v++) w[v] = load(wb + t * B + v * VL);
            for (int ii = 0; ii < rows; ii++) {
                vf x = bcast(xb[ii * ldx + t]);
                for (int v = 0; v < B / VL; v++) acc[ii][v] += x * w[v];
            }
        }
    }
    for (int ii = 0; ii < rows; ii++)
        for (int v = 0; v < B / VL; v++) store(Y + ii * ldy + v * VL, acc[ii][v]);
}

#define LINEAR_VARIANT(B, MR)                                                                    \
static void linear_full_##B(const float *X, int64_t ldx, const int32_t *col, const float *BT,   \
                            int nblk, float *Y, int64_t ldy) {                                  \
    linear_tile(B, MR, MR, X, ldx, col, BT, nblk, Y, ldy);                                      \
}                                                                                               \
static void linear_part_##B(int rows, const float *X, int64_t ldx, const int32_t *col,          \
                            const float *BT, int nblk, float *Y, int64_t ldy) {                 \
    linear_tile(B, MR, rows, X, ldx, col, BT, nblk, Y, ldy);                                    \
}
LINEAR_VARIANT(16, MR16)
LINEAR_VARIANT(32, MR32)

int bs_linear(const float *X, int64_t m, int64_t ldx, const int32_t *row_ptr, const int32_t *col,
              const float *BT, int64_t R, int b, float *Y, int64_t ldy, int nthreads) {
    if (b != 16 && b != 32) return 1;
    const int MR = b == 16 ? MR16 : MR32;
    const int64_t tiles = (m + MR - 1) / MR;
    const int64_t blk_bytes = (int64_t)b * b * sizeof(float);
    /* token chunks whose X rows stay in L3 while all of W passes over them */
    int64_t ct = CHUNK_BYTES / (ldx * (int64_t)sizeof(float)) / MR;
    if (ct < 1) ct = 1;
    for (int64_t t0 = 0; t0 < tiles; t0 += ct) {
        const int64_t t1 = t0 + ct < tiles ? t0 + ct : tiles;
        for (int64_t r0 = 0, r1; r0 < R; r0 = r1) {
            /* a group of block rows whose weights stay in L2 while every tile of the chunk passes them */
            for (r1 = r0 + 1; r1 < R && (row_ptr[r1 + 1] - row_ptr[r0]) * blk_bytes <= GROUP_BYTES; r1++) {}
            #pragma omp parallel for schedule(dynamic, 2) num_threads(nthreads)
            for (int64_t ti = t0; ti < t1; ti++) {
                const int64_t i0 = ti * MR;
                const int rows = (int)(m - i0 < MR ? m - i0 : MR);
                const float *x = X + i0 * ldx;
                for (int64_t r = r0; r < r1; r++) {
                    const int nblk = row_ptr[r + 1] - row_ptr[r];
                    const int32_t *cl = col + row_ptr[r];
                    const float *bt = BT + (int64_t)row_ptr[r] * b * b;
                    float *y = Y + i0 * ldy + r * b;
                    if (b == 16) {
                        if (rows == MR) linear_full_16(x, ldx, cl, bt, nblk, y, ldy);
                        else linear_part_16(rows, x, ldx, cl, bt, nblk, y, ldy);
                    } else {
                        if (rows == MR) linear_full_32(x, ldx, cl, bt, nblk, y, ldy);
                        else linear_part_32(rows, x, ldx, cl, bt, nblk, y, ldy);
                    }
                }
            }
        }
    }
    return 0;
}

/* One output block over the token rows [0, m) of a chunk: MR output rows at a time; ``add`` accumulates
 * onto G (the chunks after the first). */
static inline __attribute__((always_inline)) void
sddmm_block(const int B, const int MR, const float *A, int64_t lda, const float *X, int64_t ldx,
            int64_t m, float *G, int add) {
    for (int o0 = 0; o0 < B; o0 += MR) {
        vf acc[MR_MAX][NV_MAX];
        for (int ii = 0; ii < MR; ii++)
            for (int v = 0; v < B / VL; v++) acc[ii][v] = add ? load(G + (o0 + ii) * B + v * VL) : (vf){};
        for (int64_t i = 0; i < m; i++) {
            vf x[NV_MAX];
            for (int v = 0; v < B / VL; v++) x[v] = load(X + i * ldx + v * VL);
            const float *a = A + i * lda + o0;
            for (int ii = 0; ii < MR; ii++) {
                vf av = bcast(a[ii]);
                for (int v = 0; v < B / VL; v++) acc[ii][v] += av * x[v];
            }
        }
        for (int ii = 0; ii < MR; ii++)
            for (int v = 0; v < B / VL; v++) store(G + (o0 + ii) * B + v * VL, acc[ii][v]);
    }
}

static void sddmm_16(const float *A, int64_t lda, const float *X, int64_t ldx, int64_t m, float *G, int add) {
    sddmm_block(16, MR_SD16, A, lda, X, ldx, m, G, add);
}
static void sddmm_32(const float *A, int64_t lda, const float *X, int64_t ldx, int64_t m, float *G, int add) {
    sddmm_block(32, MR_SD32, A, lda, X, ldx, m, G, add);
}

int bs_sddmm(const float *A, int64_t lda, const float *X, int64_t ldx, int64_t m,
             const int32_t *brow, const int32_t *bcol, int64_t nnzb, int b, float *G, int nthreads) {
    if (b != 16 && b != 32) return 1;
    /* token chunks whose rows of A and X stay in L3 while every block reads its columns of them: a block
     * reads one cache line per token row of each operand, which from memory is a latency-bound miss */
    int64_t mc = CHUNK_BYTES / ((lda + ldx) * (int64_t)sizeof(float));
    if (mc < SD_CHUNK_MIN) mc = SD_CHUNK_MIN;
    for (int64_t i0 = 0; i0 < m; i0 += mc) {
        const int64_t rows = m - i0 < mc ? m - i0 : mc;
        const int add = i0 > 0;
        #pragma omp parallel for schedule(dynamic, 2) num_threads(nthreads)
        for (int64_t j = 0; j < nnzb; j++) {
            const float *a = A + i0 * lda + (int64_t)brow[j] * b;
            const float *x = X + i0 * ldx + (int64_t)bcol[j] * b;
            float *g = G + j * b * b;
            if (b == 16) sddmm_16(a, lda, x, ldx, rows, g, add);
            else sddmm_32(a, lda, x, ldx, rows, g, add);
        }
    }
    return 0;
}

/* The vector width and tile heights this build chose (tests check them against the CPU's ISA). */
int bs_config(int what) {
    switch (what) {
    case 0: return VL;
    case 1: return MR16;
    case 2: return MR32;
    case 3: return CHUNK_BYTES;
    case 4: return GROUP_BYTES;
    case 5: return SD_CHUNK_MIN;
    default: return -1;
    }
}
