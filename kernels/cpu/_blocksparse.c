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
    #pragma omp parallel for collapse(2) schedule(dynamic, 4) num_threads(nthreads)
    for (int64_t r = 0; r < R; r++) {
        for (int64_t ti = 0; ti < tiles; ti++) {
            const int64_t i0 = ti * MR;
            const int rows = (int)(m - i0 < MR ? m - i0 : MR);
            const int nblk = row_ptr[r + 1] - row_ptr[r];
            const int32_t *c = col + row_ptr[r];
            const float *bt = BT + (int64_t)row_ptr[r] * b * b;
            const float *x = X + i0 * ldx;
            float *y = Y + i0 * ldy + r * b;
            if (b == 16) {
                if (rows == MR) linear_full_16(x, ldx, c, bt, nblk, y, ldy);
                else linear_part_16(rows, x, ldx, c, bt, nblk, y, ldy);
            } else {
                if (rows == MR) linear_full_32(x, ldx, c, bt, nblk, y, ldy);
                else linear_part_32(rows, x, ldx, c, bt, nblk, y, ldy);
            }
        }
    }
    return 0;
}

/* One output block: MR output rows at a time, reduction over the m token rows. */
static inline __attribute__((always_inline)) void
sddmm_block(const int B, const int MR, const float *A, int64_t lda, const float *X, int64_t ldx,
            int64_t m, float *G) {
    for (int o0 = 0; o0 < B; o0 += MR) {
        vf acc[MR_MAX][NV_MAX];
        for (int ii = 0; ii < MR; ii++)
            for (int v = 0; v < B / VL; v++) acc[ii][v] = (vf){};
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

static void sddmm_16(const float *A, int64_t lda, const float *X, int64_t ldx, int64_t m, float *G) {
    sddmm_block(16, MR_SD16, A, lda, X, ldx, m, G);
}
static void sddmm_32(const float *A, int64_t lda, const float *X, int64_t ldx, int64_t m, float *G) {
    sddmm_block(32, MR_SD32, A, lda, X, ldx, m, G);
}

int bs_sddmm(const float *A, int64_t lda, const float *X, int64_t ldx, int64_t m,
             const int32_t *brow, const int32_t *bcol, int64_t nnzb, int b, float *G, int nthreads) {
    if (b != 16 && b != 32) return 1;
    #pragma omp parallel for schedule(dynamic, 2) num_threads(nthreads)
    for (int64_t j = 0; j < nnzb; j++) {
        const float *a = A + (int64_t)brow[j] * b;
        const float *x = X + (int64_t)bcol[j] * b;
        float *g = G + j * b * b;
        if (b == 16) sddmm_16(a, lda, x, ldx, m, g);
        else sddmm_32(a, lda, x, ldx, m, g);
    }
    return 0;
}

/* The vector width and tile heights this build chose (tests check them against the CPU's ISA). */
int bs_config(int what) {
    switch (what) {
    case 0: return VL;
    case 1: return MR16;
    case 2: return MR32;
    default: return -1;
    }
}
