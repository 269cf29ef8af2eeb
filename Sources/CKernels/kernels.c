// GEMV and dequantisation over weights in their own precision (see atp_kernels.h for layouts).
//
// Block formats multiply integers: the activation vector is quantised once per GEMV to 8 bits per
// 32-element block (atp_quantize_q8x); each weight block's 32 products are summed exactly in
// integers and scaled once by d_w·d_x, so a decode step streams the weights at 4.25–8.5 bits each
// instead of 32. The AVX2 versions sum the same integers (vpmaddubsw on |w| and sign-adjusted x,
// then vpmaddwd); they differ from the scalar ones only in the order of the float additions.

#include "atp_kernels.h"
#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ATP_X86 1
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#endif

// MARK: scalar conversions

float atp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {   // subnormal: man · 2⁻²⁴
            float v = (float)man * 0x1p-24f;
            return sign ? -v : v;
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112u) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

float atp_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t atp_f32_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x40u);   // quiet NaN
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline uint16_t load_u16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

int atp_block_elements(int format) {
    switch (format) {
    case ATP_W_F32: case ATP_W_F16: case ATP_W_BF16: return 1;
    case ATP_W_Q8_0: case ATP_W_Q4_0: case ATP_W_Q4_1: return 32;
    default: return 0;
    }
}

int atp_block_bytes(int format) {
    switch (format) {
    case ATP_W_F32: return 4;
    case ATP_W_F16: case ATP_W_BF16: return 2;
    case ATP_W_Q8_0: return 34;
    case ATP_W_Q4_0: return 18;
    case ATP_W_Q4_1: return 20;
    default: return 0;
    }
}

// MARK: activation quantisation

void atp_quantize_q8x(const float *x, int n, atp_q8x_block *out) {
    for (int b = 0; b < n / 32; b++) {
        const float *v = x + b * 32;
        float amax = 0;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(v[i]));
        float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            int q = (int)roundf(v[i] * id);
            q = q > 127 ? 127 : (q < -127 ? -127 : q);
            out[b].q[i] = (int8_t)q;
            sum += q;
        }
        out[b].d = d;
        out[b].s = d * (float)sum;
    }
}

// MARK: scalar row dots (the reference)

static float dot_q8_0_scalar(const uint8_t *w, const atp_q8x_block *x, int nb) {
    float acc = 0;
    for (int b = 0; b < nb; b++, w += 34) {
        const int8_t *q = (const int8_t *)(w + 2);
        int s = 0;
        for (int i = 0; i < 32; i++) s += q[i] * x[b].q[i];
        acc += atp_f16_to_f32(load_u16(w)) * x[b].d * (float)s;
    }
    return acc;
}

static float dot_q4_0_scalar(const uint8_t *w, const atp_q8x_block *x, int nb) {
    float acc = 0;
    for (int b = 0; b < nb; b++, w += 18) {
        const uint8_t *qs = w + 2;
        int s = 0;
        for (int i = 0; i < 16; i++) {
            s += ((qs[i] & 0x0F) - 8) * x[b].q[i];
            s += ((qs[i] >> 4) - 8) * x[b].q[i + 16];
        }
        acc += atp_f16_to_f32(load_u16(w)) * x[b].d * (float)s;
    }
    return acc;
}

static float dot_q4_1_scalar(const uint8_t *w, const atp_q8x_block *x, int nb) {
    float acc = 0;
    for (int b = 0; b < nb; b++, w += 20) {
        const uint8_t *qs = w + 4;
        int s = 0;
        for (int i = 0; i < 16; i++) {
            s += (qs[i] & 0x0F) * x[b].q[i];
            s += (qs[i] >> 4) * x[b].q[i + 16];
        }
        acc += atp_f16_to_f32(load_u16(w)) * x[b].d * (float)s + atp_f16_to_f32(load_u16(w + 2)) * x[b].s;
    }
    return acc;
}

static float dot_f16_scalar(const uint8_t *w, const float *x, int n) {
    float acc = 0;
    for (int i = 0; i < n; i++) acc += atp_f16_to_f32(load_u16(w + 2 * i)) * x[i];
    return acc;
}

static float dot_bf16_scalar(const uint8_t *w, const float *x, int n) {
    float acc = 0;
    for (int i = 0; i < n; i++) acc += atp_bf16_to_f32(load_u16(w + 2 * i)) * x[i];
    return acc;
}

static float dot_f32_scalar(const uint8_t *w, const float *x, int n) {
    float acc = 0;
    for (int i = 0; i < n; i++) {
        float v;
        memcpy(&v, w + 4 * i, 4);
        acc += v * x[i];
    }
    return acc;
}

// MARK: AVX2 row dots

#ifdef ATP_X86
AVX2_FN static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Σ over 32 lanes of w·x for signed bytes, as 8 int32 lanes converted to float.
AVX2_FN static inline __m256 dot32_signed(__m256i w, __m256i x) {
    __m256i aw = _mm256_sign_epi8(w, w);    // |w| (as unsigned; −128 becomes 128)
    __m256i sx = _mm256_sign_epi8(x, w);    // x with w's sign (0 where w is 0)
    __m256i p16 = _mm256_maddubs_epi16(aw, sx);
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
}

/// The 32 nibbles of a Q4 block as bytes 0…15: low nibbles in lanes 0–15, high in 16–31.
AVX2_FN static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i t = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

AVX2_FN static float dot_q8_0_avx2(const uint8_t *w, const atp_q8x_block *x, int nb) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int b = 0;
    for (; b + 1 < nb; b += 2, w += 68) {
        __m256 p0 = dot32_signed(_mm256_loadu_si256((const __m256i *)(w + 2)), _mm256_loadu_si256((const __m256i *)x[b].q));
        __m256 p1 = dot32_signed(_mm256_loadu_si256((const __m256i *)(w + 36)), _mm256_loadu_si256((const __m256i *)x[b + 1].q));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(load_u16(w)) * x[b].d), p0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(load_u16(w + 34)) * x[b + 1].d), p1, acc1);
    }
    for (; b < nb; b++, w += 34) {
        __m256 p = dot32_signed(_mm256_loadu_si256((const __m256i *)(w + 2)), _mm256_loadu_si256((const __m256i *)x[b].q));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(load_u16(w)) * x[b].d), p, acc0);
    }
    return hsum256(_mm256_add_ps(acc0, acc1));
}

AVX2_FN static float dot_q4_0_avx2(const uint8_t *w, const atp_q8x_block *x, int nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (int b = 0; b < nb; b++, w += 18) {
        __m256i q = _mm256_sub_epi8(nibbles32(w + 2), eight);
        __m256 p = dot32_signed(q, _mm256_loadu_si256((const __m256i *)x[b].q));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(load_u16(w)) * x[b].d), p, acc);
    }
    return hsum256(acc);
}

AVX2_FN static float dot_q4_1_avx2(const uint8_t *w, const atp_q8x_block *x, int nb) {
    __m256 acc = _mm256_setzero_ps();
    float offsets = 0;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++, w += 20) {
        __m256i q = nibbles32(w + 4);   // unsigned 0…15: vpmaddubsw takes them as they are
        __m256i p16 = _mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)x[b].q));
        __m256 p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(load_u16(w)) * x[b].d), p, acc);
        offsets += _cvtsh_ss(load_u16(w + 2)) * x[b].s;
    }
    return hsum256(acc) + offsets;
}

/// Two Q4_0 rows against one activation vector: each activation block is loaded once, and the two
/// rows' accumulation chains run side by side. The nibbles enter vpmaddubsw unsigned (0…15, no sign
/// adjustment) and the −8 offset comes back as −8·d_w·s_x per block (s_x = d_x·Σq_x), as Q4_1's offset does.
AVX2_FN static void dot2_q4_0_avx2(const uint8_t *w0, const uint8_t *w1, const atp_q8x_block *x, int nb,
                                   float *out0, float *out1) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float c0 = 0, c1 = 0;
    const __m256i ones = _mm256_set1_epi16(1);
    for (int b = 0; b < nb; b++, w0 += 18, w1 += 18) {
        __m256i qx = _mm256_loadu_si256((const __m256i *)x[b].q);
        __m256 p0 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles32(w0 + 2), qx), ones));
        __m256 p1 = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles32(w1 + 2), qx), ones));
        float d0 = _cvtsh_ss(load_u16(w0)), d1 = _cvtsh_ss(load_u16(w1));
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(d0 * x[b].d), p0, a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(d1 * x[b].d), p1, a1);
        c0 += d0 * x[b].s;
        c1 += d1 * x[b].s;
    }
    *out0 = hsum256(a0) - 8 * c0;
    *out1 = hsum256(a1) - 8 * c1;
}

/// Rows `r0 ..< r1` of a Q4_0 matrix, two at a time (the loop lives here so that the pair kernel inlines).
AVX2_FN static int gemv_q4_0_pairs_avx2(const uint8_t *base, size_t row_bytes, int r0, int r1, int nb,
                                        const atp_q8x_block *xq, float *y, float beta) {
    int r = r0;
    for (; r + 1 < r1; r += 2) {
        float v0, v1;
        const uint8_t *row = base + (size_t)r * row_bytes;
        dot2_q4_0_avx2(row, row + row_bytes, xq, nb, &v0, &v1);
        y[r] = beta == 0 ? v0 : v0 + beta * y[r];
        y[r + 1] = beta == 0 ? v1 : v1 + beta * y[r + 1];
    }
    return r;
}

AVX2_FN static float dot_f16_avx2(const uint8_t *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 16))), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 32))), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i + 48))), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8)
        a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))), _mm256_loadu_ps(x + i), a0);
    float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += _cvtsh_ss(load_u16(w + 2 * i)) * x[i];
    return acc;
}

AVX2_FN static inline __m256 bf16x8(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

AVX2_FN static float dot_bf16_avx2(const uint8_t *w, const float *x, int n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(bf16x8(w + 2 * i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(bf16x8(w + 2 * i + 16), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(bf16x8(w + 2 * i + 32), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(bf16x8(w + 2 * i + 48), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(bf16x8(w + 2 * i), _mm256_loadu_ps(x + i), a0);
    float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += atp_bf16_to_f32(load_u16(w + 2 * i)) * x[i];
    return acc;
}

AVX2_FN static float dot_f32_avx2(const uint8_t *w, const float *x, int n) {
    const float *wf = (const float *)w;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wf + i), _mm256_loadu_ps(x + i), a0);
    float acc = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) acc += wf[i] * x[i];
    return acc;
}
#endif

// MARK: GEMV

#ifdef ATP_X86
/// The AVX2 row loop: one loop per format inside one vector function, so that the row kernels inline.
AVX2_FN static void gemv_rows_avx2(int format, const uint8_t *base, size_t row_bytes, int r0, int r1, int cols,
                                   const float *x, const atp_q8x_block *xq, float *y, float beta) {
    int nb = cols / 32;
#define ATP_ROWS(expr)                                                        \
    for (int r = r0; r < r1; r++) {                                           \
        const uint8_t *row = base + (size_t)r * row_bytes;                    \
        float v = (expr);                                                     \
        y[r] = beta == 0 ? v : v + beta * y[r];                               \
    }
    switch (format) {
    case ATP_W_Q8_0: ATP_ROWS(dot_q8_0_avx2(row, xq, nb)) break;
    case ATP_W_Q4_0: {
        // Two rows at a time (1.3–1.5× the one-row kernel here, 131072×896 matrices streamed from
        // memory); for Q8_0 and Q4_1 the one-row kernels measured as fast or faster.
        int r = gemv_q4_0_pairs_avx2(base, row_bytes, r0, r1, nb, xq, y, beta);
        r0 = r;
        ATP_ROWS(dot_q4_0_avx2(row, xq, nb)) break;
    }
    case ATP_W_Q4_1: ATP_ROWS(dot_q4_1_avx2(row, xq, nb)) break;
    case ATP_W_F16: ATP_ROWS(dot_f16_avx2(row, x, cols)) break;
    case ATP_W_BF16: ATP_ROWS(dot_bf16_avx2(row, x, cols)) break;
    default: ATP_ROWS(dot_f32_avx2(row, x, cols)) break;
    }
#undef ATP_ROWS
}
#endif

void atp_gemv_rows(int format, const void *w, size_t row_bytes, int r0, int r1, int cols,
                   const float *x, const atp_q8x_block *xq, float *y, float beta) {
    const uint8_t *base = (const uint8_t *)w;
#ifdef ATP_X86
    if (atp_kernels_level() >= ATP_LEVEL_AVX2) {
        gemv_rows_avx2(format, base, row_bytes, r0, r1, cols, x, xq, y, beta);
        return;
    }
#endif
    int nb = cols / 32;
    for (int r = r0; r < r1; r++) {
        const uint8_t *row = base + (size_t)r * row_bytes;
        float v;
        switch (format) {
        case ATP_W_Q8_0: v = dot_q8_0_scalar(row, xq, nb); break;
        case ATP_W_Q4_0: v = dot_q4_0_scalar(row, xq, nb); break;
        case ATP_W_Q4_1: v = dot_q4_1_scalar(row, xq, nb); break;
        case ATP_W_F16: v = dot_f16_scalar(row, x, cols); break;
        case ATP_W_BF16: v = dot_bf16_scalar(row, x, cols); break;
        default: v = dot_f32_scalar(row, x, cols); break;
        }
        y[r] = beta == 0 ? v : v + beta * y[r];
    }
}

// MARK: dequantisation

#ifdef ATP_X86
AVX2_FN static void dequant_row_avx2(int format, const uint8_t *w, int cols, float *o) {
    int i = 0;
    switch (format) {
    case ATP_W_F16:
        for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(o + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * i))));
        for (; i < cols; i++) o[i] = _cvtsh_ss(load_u16(w + 2 * i));
        return;
    case ATP_W_BF16:
        for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(o + i, bf16x8(w + 2 * i));
        for (; i < cols; i++) o[i] = atp_bf16_to_f32(load_u16(w + 2 * i));
        return;
    case ATP_W_Q8_0:
        for (int b = 0; b < cols / 32; b++, w += 34) {
            __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(w)));
            for (int k = 0; k < 4; k++) {
                __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(w + 2 + 8 * k)));
                _mm256_storeu_ps(o + b * 32 + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(q)));
            }
        }
        return;
    case ATP_W_Q4_0:
    case ATP_W_Q4_1: {
        // Rounded as gguf-py does: d·(q − 8), and (d·q) + m with two roundings (no fused multiply-add).
        int q41 = format == ATP_W_Q4_1, bytes = q41 ? 20 : 18;
        for (int b = 0; b < cols / 32; b++, w += bytes) {
            __m256 d = _mm256_set1_ps(_cvtsh_ss(load_u16(w)));
            __m256 m = _mm256_set1_ps(q41 ? _cvtsh_ss(load_u16(w + 2)) : 0.0f);
            __m256i q = nibbles32(w + (q41 ? 4 : 2));
            if (!q41) q = _mm256_sub_epi8(q, _mm256_set1_epi8(8));
            int8_t lanes[32];
            _mm256_storeu_si256((__m256i *)lanes, q);
            for (int k = 0; k < 4; k++) {
                __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(lanes + 8 * k))));
                __m256 v = _mm256_mul_ps(d, f);
                _mm256_storeu_ps(o + b * 32 + 8 * k, q41 ? _mm256_add_ps(v, m) : v);
            }
        }
        return;
    }
    default:
        memcpy(o, w, (size_t)cols * 4);
        return;
    }
}
#endif

static void dequant_row_scalar(int format, const uint8_t *w, int cols, float *o) {
    switch (format) {
    case ATP_W_F16:
        for (int i = 0; i < cols; i++) o[i] = atp_f16_to_f32(load_u16(w + 2 * i));
        return;
    case ATP_W_BF16:
        for (int i = 0; i < cols; i++) o[i] = atp_bf16_to_f32(load_u16(w + 2 * i));
        return;
    case ATP_W_Q8_0:
        for (int b = 0; b < cols / 32; b++, w += 34) {
            float d = atp_f16_to_f32(load_u16(w));
            for (int i = 0; i < 32; i++) o[b * 32 + i] = d * (float)((const int8_t *)(w + 2))[i];
        }
        return;
    case ATP_W_Q4_0:
        for (int b = 0; b < cols / 32; b++, w += 18) {
            float d = atp_f16_to_f32(load_u16(w));
            for (int i = 0; i < 16; i++) {
                o[b * 32 + i] = d * (float)((w[2 + i] & 0x0F) - 8);
                o[b * 32 + i + 16] = d * (float)((w[2 + i] >> 4) - 8);
            }
        }
        return;
    case ATP_W_Q4_1:
        for (int b = 0; b < cols / 32; b++, w += 20) {
            float d = atp_f16_to_f32(load_u16(w)), m = atp_f16_to_f32(load_u16(w + 2));
            for (int i = 0; i < 16; i++) {
                o[b * 32 + i] = d * (float)(w[4 + i] & 0x0F) + m;
                o[b * 32 + i + 16] = d * (float)(w[4 + i] >> 4) + m;
            }
        }
        return;
    default:
        memcpy(o, w, (size_t)cols * 4);
        return;
    }
}

void atp_dequant_rows(int format, const void *w, size_t row_bytes, int r0, int r1, int cols,
                      float *out, size_t ldo) {
    const uint8_t *base = (const uint8_t *)w;
#ifdef ATP_X86
    if (atp_kernels_level() >= ATP_LEVEL_AVX2) {
        for (int r = r0; r < r1; r++) dequant_row_avx2(format, base + (size_t)r * row_bytes, cols, out + (size_t)(r - r0) * ldo);
        return;
    }
#endif
    for (int r = r0; r < r1; r++) dequant_row_scalar(format, base + (size_t)r * row_bytes, cols, out + (size_t)(r - r0) * ldo);
}
