// encode: the vision tower and projector (and the CLIP relevance encode when the VLM's tower
// differs from the CLIP's, inside this stage's time).

struct EncodeStage: Stage {
    let name = "encode"
    let session: VLMSession

    /// A reused frame needs no encoding.
    func passThrough(_ p: PreparedFrame) -> [EncodedFrame]? {
        p.reused ? [EncodedFrame(frame: p.frame, encoded: nil)] : nil
    }

    func process(_ p: PreparedFrame) throws -> [EncodedFrame] {
        [EncodedFrame(frame: p.frame, encoded: try session.encode(pixels: p.pixels))]
    }
}
