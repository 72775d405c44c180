/* Clock and FMA-throughput probes for kernels/probe.py (accelsim hw calibrate-local, benchmarks/bench_cpu_peak.py) (x86-64, GCC inline asm).
 *
 * cp_chain:  `reps` x 100 dependent 64-bit adds. An integer add has a latency of one cycle on every
 *            x86 core of the last 15 years (Agner Fog's instruction tables; AMD Zen 5 software
 *            optimization guide), so the chain takes 100 * reps core cycles: cycles / seconds is the
 *            clock the core really runs at, whatever the TSC (/proc/cpuinfo) says.
 * cp_fma512: `reps` x 12 independent 512-bit fp32 FMAs (12 accumulators cover the FMA latency of
 *            2 pipes x 4-5 cycles), 12 * 16 * 2 FLOP per repetition.
 * cp_fma256: the same with 256-bit (AVX2) FMAs, the width MKL uses on AMD CPUs.
 * Each runs on `threads` OpenMP threads at once (all-core clock) and returns the slowest thread's
 * seconds.
 */
#include <stdint.h>
#include <omp.h>

static double run(int kind, int64_t reps, int threads) {
    double worst = 0.0;
    #pragma omp parallel num_threads(threads) reduction(max:worst)
    {
        double t0 = omp_get_wtime();
        if (kind == 0) {
            uint64_t x = 0;
            for (int64_t i = 0; i < reps; i++)
                __asm__ volatile(".rept 100\n\tadd $1, %0\n\t.endr" : "+r"(x));
        } else if (kind == 1) {
            __asm__ volatile("vxorps %%zmm0, %%zmm0, %%zmm0\n\tvmovaps %%zmm0, %%zmm12\n\tvmovaps %%zmm0, %%zmm13"
                             ::: "xmm0", "xmm12", "xmm13");
            for (int64_t i = 0; i < reps; i++)
                __asm__ volatile(
                    "vfmadd231ps %%zmm12, %%zmm13, %%zmm0\n\tvfmadd231ps %%zmm12, %%zmm13, %%zmm1\n\t"
                    "vfmadd231ps %%zmm12, %%zmm13, %%zmm2\n\tvfmadd231ps %%zmm12, %%zmm13, %%zmm3\n\t"
                    "vfmadd231ps %%zmm12, %%zmm13, %%zmm4\n\tvfmadd231ps %%zmm12, %%zmm13, %%zmm5\n\t"
                    "vfmadd231ps %%zmm12, %%zmm13, %%zmm6\n\tvfmadd231ps %%zmm12, %%zmm13, %%zmm7\n\t"
                    "vfmadd231ps %%zmm12, %%zmm13, %%zmm8\n\tvfmadd231ps %%zmm12, %%zmm13, %%zmm9\n\t"
                    "vfmadd231ps %%zmm12, %%zmm13, %%zmm10\n\tvfmadd231ps %%zmm12, %%zmm13, %%zmm11\n\t"
                    ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                        "xmm10", "xmm11");
        } else {
            __asm__ volatile("vxorps %%ymm0, %%ymm0, %%ymm0\n\tvmovaps %%ymm0, %%ymm12\n\tvmovaps %%ymm0, %%ymm13"
                             ::: "xmm0", "xmm12", "xmm13");
            for (int64_t i = 0; i < reps; i++)
                __asm__ volatile(
                    "vfmadd231ps %%ymm12, %%ymm13, %%ymm0\n\tvfmadd231ps %%ymm12, %%ymm13, %%ymm1\n\t"
                    "vfmadd231ps %%ymm12, %%ymm13, %%ymm2\n\tvfmadd231ps %%ymm12, %%ymm13, %%ymm3\n\t"
                    "vfmadd231ps %%ymm12, %%ymm13, %%ymm4\n\tvfmadd231ps %%ymm12, %%ymm13, %%ymm5\n\t"
                    "vfmadd231ps %%ymm12, %%ymm13, %%ymm6\n\tvfmadd231ps %%ymm12, %%ymm13, %%ymm7\n\t"
                    "vfmadd231ps %%ymm12, %%ymm13, %%ymm8\n\tvfmadd231ps %%ymm12, %%ymm13, %%ymm9\n\t"
                    "vfmadd231ps %%ymm12, %%ymm13, %%ymm10\n\tvfmadd231ps %%ymm12, %%ymm13, %%ymm11\n\t"
                    ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                        "xmm10", "xmm11");
        }
        worst = omp_get_wtime() - t0;
    }
    return worst;
}

double cp_chain(int64_t reps, int threads) { return run(0, reps, threads); }
double cp_fma512(int64_t reps, int threads) { return run(1, reps, threads); }
double cp_fma256(int64_t reps, int threads) { return run(2, reps, threads); }
