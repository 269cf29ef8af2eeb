// Feeds tokenizer files of a model folder, split on NUL bytes:
//   tokenizer.json                                  (no NUL)
//   vocab.json \0 merges.txt                        (one NUL)
//   vocab.json \0 merges.txt \0 tokenizer_config.json
//   tokenizer.json \0 \0 tokenizer_config.json      (empty middle part)
// through `BPETokenizer(folder:)` (model, added tokens, normaliser, pre-tokeniser, post-processor,
// decoder, config, chat template) and `CLIPTokenizer(folder:)`, then encodes and decodes a fixed text.
import Foundation
import ModelIO

private let sampleText = "Hello world! It's 2024: naïve café, 你好, 🙂\n\t  <|im_start|>user <s>12345</s> <|endoftext|> <|startoftext|>a photo"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let parts = FuzzInput(data, size).parts(maxParts: 3)
    var tokenizerJSON: ArraySlice<UInt8>?, vocab: ArraySlice<UInt8>?, merges: ArraySlice<UInt8>?, config: ArraySlice<UInt8>?
    switch parts.count {
    case 1: tokenizerJSON = parts[0]
    case 2: (vocab, merges) = (parts[0], parts[1])
    default:
        if parts[1].isEmpty { tokenizerJSON = parts[0] } else { (vocab, merges) = (parts[0], parts[1]) }
        config = parts[2]
    }
    FuzzScratch.put(tokenizerJSON, "tokenizer.json")
    FuzzScratch.put(vocab, "vocab.json")
    FuzzScratch.put(merges, "merges.txt")
    FuzzScratch.put(config, "tokenizer_config.json")

    do {
        let tokenizer = try BPETokenizer(folder: FuzzScratch.folder)
        let ids = tokenizer.encode(sampleText)
        _ = tokenizer.encode(sampleText, addSpecialTokens: false)
        _ = tokenizer.decode(ids, skipSpecialTokens: true)
        _ = tokenizer.decode(ids + [-1, 0, Int.max], skipSpecialTokens: false)
        if let first = ids.first { _ = tokenizer.token(for: first) }
        _ = tokenizer.tokenId(for: "<|endoftext|>")
        if let template = tokenizer.chatTemplate {
            let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi", images: 1)]
            do { _ = try template.render(messages: messages, addGenerationPrompt: true) } catch { consume(error) }
            do { _ = try template.render(messages: Array(messages.suffix(1)), addGenerationPrompt: false) } catch { consume(error) }
        }
    } catch { consume(error) }

    do {
        let clip = try CLIPTokenizer(folder: FuzzScratch.folder)
        let ids = clip.encode(sampleText)
        _ = clip.encode(sampleText, maxLength: nil)
        _ = clip.decode(ids + [-1, clip.vocabularySize, Int.max])
    } catch { consume(error) }
    return 0
}
