// CPU feature detection from cpuid (leaf 1 and leaf 7 sub-leaves 0 and 1) and xgetbv: a vector
// extension counts only when the CPU reports it AND the OS saves its registers (XCR0).

#include "atp_kernels.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xcr0(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t detect(void) {
    unsigned a, b, c, d;
    uint32_t f = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx) return 0;
    uint64_t xcr = xcr0();
    int ymm = (xcr & 0x6) == 0x6;             // SSE + AVX state
    int zmm = ymm && (xcr & 0xE0) == 0xE0;    // opmask, ZMM hi256, hi16 ZMM
    if (!ymm) return 0;
    if ((c >> 12) & 1) f |= ATP_CPU_FMA;
    if ((c >> 29) & 1) f |= ATP_CPU_F16C;
    unsigned max_leaf = __get_cpuid_max(0, 0);
    if (max_leaf < 7) return f;
    __cpuid_count(7, 0, a, b, c, d);
    unsigned sub_leaves = a;
    if ((b >> 5) & 1) f |= ATP_CPU_AVX2;
    if (zmm) {
        if ((b >> 16) & 1) f |= ATP_CPU_AVX512F;
        if ((b >> 17) & 1) f |= ATP_CPU_AVX512DQ;
        if ((b >> 30) & 1) f |= ATP_CPU_AVX512BW;
        if ((b >> 31) & 1) f |= ATP_CPU_AVX512VL;
        if ((c >> 11) & 1) f |= ATP_CPU_AVX512VNNI;
    }
    if (sub_leaves >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        if ((a >> 4) & 1) f |= ATP_CPU_AVXVNNI;
        if (zmm && ((a >> 5) & 1)) f |= ATP_CPU_AVX512BF16;
    }
    return f;
}
#else
static uint32_t detect(void) { return 0; }
#endif

uint32_t atp_cpu_features(void) {
    static uint32_t cached = 0xFFFFFFFFu;   // benign race: every thread computes the same value
    uint32_t v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v == 0xFFFFFFFFu) {
        v = detect();
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}

int atp_kernels_best_level(void) {
    uint32_t need = ATP_CPU_AVX2 | ATP_CPU_FMA | ATP_CPU_F16C;
    return (atp_cpu_features() & need) == need ? ATP_LEVEL_AVX2 : ATP_LEVEL_SCALAR;
}

static int level_override = -1;

int atp_kernels_level(void) {
    int best = atp_kernels_best_level();
    int o = __atomic_load_n(&level_override, __ATOMIC_RELAXED);
    return (o >= 0 && o < best) ? o : best;
}

int atp_kernels_set_level(int level) {
    __atomic_store_n(&level_override, level < 0 ? -1 : level, __ATOMIC_RELAXED);
    return atp_kernels_level();
}
