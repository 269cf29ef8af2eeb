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
static inline int64_t atp_av_nopts_value(void) { return AV_NOPTS_VALUE; }
static inline AVRational atp_av_time_base_q(void) { return AV_TIME_BASE_Q; }
#endif
