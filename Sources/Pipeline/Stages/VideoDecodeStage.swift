// video_decode: the change gate, then the model's input pixels. The source's demux, decode and
// scale of the frame (VideoFrame.decodeMs) are submitted as this stage's upstream work.
import Media

struct VideoDecodeStage: Stage {
    let name = "video_decode"
    let session: VLMSession
    let change: ChangeGate

    func process(_ raw: RawFrame) throws -> [PreparedFrame] {
        let f = raw.frame
        if change.isUnchanged(f) { return [PreparedFrame(frame: f, pixels: [], reused: true)] }
        let pixels = try session.preprocess(rgb: f.image.pixels, width: f.image.width, height: f.image.height)
        return [PreparedFrame(frame: f, pixels: pixels, reused: false)]
    }
}
