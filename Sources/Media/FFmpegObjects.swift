// Owning wrappers of the FFmpeg objects that images and video share: each frees its object on deinit.

import CFFmpeg

/// An `AVCodecContext` (decoder or encoder), freed on deinit.
final class OwnedCodecContext {
    let pointer: UnsafeMutablePointer<AVCodecContext>

    init(codec: UnsafePointer<AVCodec>, name: String) throws {
        guard let ctx = avcodec_alloc_context3(codec) else {
            throw MediaError(.decode, path: name, "cannot allocate codec context (out of memory)")
        }
        pointer = ctx
    }

    deinit {
        var ctx: UnsafeMutablePointer<AVCodecContext>? = pointer
        avcodec_free_context(&ctx)
    }
}

/// An `AVFrame`, freed on deinit.
final class OwnedFrame {
    let pointer: UnsafeMutablePointer<AVFrame>

    init(name: String) throws {
        guard let frame = av_frame_alloc() else {
            throw MediaError(.decode, path: name, "cannot allocate frame (out of memory)")
        }
        pointer = frame
    }

    deinit {
        var frame: UnsafeMutablePointer<AVFrame>? = pointer
        av_frame_free(&frame)
    }
}

/// An `AVPacket`, freed on deinit.
final class OwnedPacket {
    let pointer: UnsafeMutablePointer<AVPacket>

    init(name: String) throws {
        guard let packet = av_packet_alloc() else {
            throw MediaError(.decode, path: name, "cannot allocate packet (out of memory)")
        }
        pointer = packet
    }

    deinit {
        var packet: UnsafeMutablePointer<AVPacket>? = pointer
        av_packet_free(&packet)
    }
}
