#ifndef ATP_CFFMPEG_SHIM_H
#define ATP_CFFMPEG_SHIM_H
#include <libavformat/avformat.h>
#include <libavcodec/avcodec.h>
#include <libavdevice/avdevice.h>
#include <libswscale/swscale.h>
#include <libavutil/avutil.h>
#include <libavutil/error.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/dict.h>

// FFmpeg's error codes are macros that Swift cannot import; wrap them.
static inline int atp_averror_eagain(void) { return AVERROR(EAGAIN); }
static inline int atp_averror_eof(void) { return AVERROR_EOF; }
static inline int atp_averror_exit(void) { return AVERROR_EXIT; }
static inline int atp_averror_invaliddata(void) { return AVERROR_INVALIDDATA; }
static inline int atp_averror_enomem(void) { return AVERROR(ENOMEM); }
static inline int64_t atp_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline AVRational atp_av_time_base_q(void) { return AV_TIME_BASE_Q; }

// MARK: - Stall watchdog for blocking reads (video sources)
//
// An AVIOInterruptCB whose opaque pointer is an atp_watchdog. FFmpeg polls the callback while it
// blocks in I/O; a non-zero return aborts the call with AVERROR_EXIT. The fields are plain
// integers accessed only with __atomic builtins, so close() on another thread is race-free.
#include <time.h>
#include <stdlib.h>
typedef struct atp_watchdog {
    int64_t deadline_ns;   // CLOCK_MONOTONIC deadline; 0 = disarmed
    int32_t closed;        // 1 once the owner asked to stop
    int32_t fired;         // 1 when the deadline (not close) caused the last abort
} atp_watchdog;

static inline int64_t atp_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}
static inline atp_watchdog *atp_watchdog_new(void) { return (atp_watchdog *)calloc(1, sizeof(atp_watchdog)); }
static inline void atp_watchdog_free(atp_watchdog *w) { free(w); }
/// Arms the deadline `timeout_ms` from now (<= 0 disarms) and clears `fired`.
static inline void atp_watchdog_arm(atp_watchdog *w, int64_t timeout_ms) {
    int64_t d = timeout_ms > 0 ? atp_monotonic_ns() + timeout_ms * 1000000LL : 0;
    __atomic_store_n(&w->fired, 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&w->deadline_ns, d, __ATOMIC_SEQ_CST);
}
static inline void atp_watchdog_close(atp_watchdog *w) { __atomic_store_n(&w->closed, 1, __ATOMIC_SEQ_CST); }
static inline int atp_watchdog_is_closed(atp_watchdog *w) { return __atomic_load_n(&w->closed, __ATOMIC_SEQ_CST); }
static inline int atp_watchdog_fired(atp_watchdog *w) { return __atomic_load_n(&w->fired, __ATOMIC_SEQ_CST); }
static inline int atp_watchdog_callback(void *opaque) {
    atp_watchdog *w = (atp_watchdog *)opaque;
    if (!w) return 0;
    if (__atomic_load_n(&w->closed, __ATOMIC_SEQ_CST)) return 1;
    int64_t d = __atomic_load_n(&w->deadline_ns, __ATOMIC_SEQ_CST);
    if (d != 0 && atp_monotonic_ns() > d) {
        __atomic_store_n(&w->fired, 1, __ATOMIC_SEQ_CST);
        return 1;
    }
    return 0;
}
/// Installs the watchdog as `ctx->interrupt_callback` (before avformat_open_input).
static inline void atp_watchdog_install(AVFormatContext *ctx, atp_watchdog *w) {
    ctx->interrupt_callback.callback = atp_watchdog_callback;
    ctx->interrupt_callback.opaque = w;
}
static inline int atp_averror_etimedout(void) { return AVERROR(ETIMEDOUT); }
static inline int atp_averror_enoent(void) { return AVERROR(ENOENT); }
#endif
