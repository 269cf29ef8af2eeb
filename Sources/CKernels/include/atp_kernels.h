#ifndef ATP_KERNELS_H
#define ATP_KERNELS_H
// Kernels over weights kept in their file's own precision (GGUF block formats, f16, bf16), and
// the CPU feature detection that picks them. The byte layouts are ggml's (GGUF spec):
//   Q8_0: f16 d, int8 q[32]                       value = q·d
//   Q4_0: f16 d, uint8 qs[16]                     value = (nibble − 8)·d; low nibbles are
//                                                 elements 0…15, high nibbles 16…31
//   Q4_1: f16 d, f16 m, uint8 qs[16]              value = nibble·d + m (same nibble order)
//   F16 / BF16: one 16-bit value per element.
// Every kernel has a portable scalar version and, where the CPU has AVX2 + FMA + F16C, a vector
// one chosen at run time; `atp_kernels_set_level` forces a lower level (tests, fallbacks).

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CPU features (cpuid flags, with the OS's register-state support checked through xgetbv).
enum {
    ATP_CPU_AVX2 = 1u << 0,
    ATP_CPU_FMA = 1u << 1,
    ATP_CPU_F16C = 1u << 2,
    ATP_CPU_AVX512F = 1u << 3,
    ATP_CPU_AVX512BW = 1u << 4,
    ATP_CPU_AVX512VL = 1u << 5,
    ATP_CPU_AVX512VNNI = 1u << 6,
    ATP_CPU_AVX512BF16 = 1u << 7,
    ATP_CPU_AVXVNNI = 1u << 8,
    ATP_CPU_AVX512DQ = 1u << 9,
};

/// The features this CPU reports and the OS enables (0 on non-x86 machines).
uint32_t atp_cpu_features(void);

/// Kernel levels, lowest first.
enum { ATP_LEVEL_SCALAR = 0, ATP_LEVEL_AVX2 = 1 };

/// The level the kernels run at: the best the CPU supports, unless lowered.
int atp_kernels_level(void);
/// The best level this CPU supports.
int atp_kernels_best_level(void);
/// Sets the level (clamped to what the CPU supports); returns the level now in force.
int atp_kernels_set_level(int level);

/// Weight formats (values are ggml's type ids).
enum { ATP_W_F32 = 0, ATP_W_F16 = 1, ATP_W_Q4_0 = 2, ATP_W_Q4_1 = 3, ATP_W_Q8_0 = 8, ATP_W_BF16 = 30 };

/// Elements per block of a format (1 for f32/f16/bf16, 32 for the Q formats; 0 if unknown).
int atp_block_elements(int format);
/// Bytes per block of a format (0 if unknown).
int atp_block_bytes(int format);

/// An activation block quantised to 8 bits: value = q·d; `s` = d·Σq (for formats with an offset).
typedef struct {
    float d;
    float s;
    int8_t q[32];
} atp_q8x_block;

/// Quantises `n` floats (a multiple of 32) into n/32 blocks: d = max|x|/127, q = round(x/d).
void atp_quantize_q8x(const float *x, int n, atp_q8x_block *out);

/// `y[r] = dot(row r of W, x) + beta·y[r]` for rows `r0 ..< r1` of a row-major weight matrix in
/// `format` with `row_bytes` bytes per row and `cols` columns. Block formats use `xq` (x quantised
/// by `atp_quantize_q8x`); f32/f16/bf16 use `x`.
void atp_gemv_rows(int format, const void *w, size_t row_bytes, int r0, int r1, int cols,
                   const float *x, const atp_q8x_block *xq, float *y, float beta);

/// Dequantises rows `r0 ..< r1` into `out` (row-major, `cols` floats per row, stride `ldo`).
void atp_dequant_rows(int format, const void *w, size_t row_bytes, int r0, int r1, int cols,
                      float *out, size_t ldo);

/// f16 / bf16 bits to f32.
float atp_f16_to_f32(uint16_t h);
float atp_bf16_to_f32(uint16_t h);
/// f32 to bf16 bits, rounding to nearest even (NaN kept a NaN).
uint16_t atp_f32_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
