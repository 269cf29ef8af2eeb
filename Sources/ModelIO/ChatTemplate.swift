import Foundation

// Chat templates as code, one family at a time, chosen by recognising the model's Jinja template
// text (tokenizer_config.json `chat_template`, chat_template.jinja/.json, or GGUF
// `tokenizer.chat_template`). No Jinja interpreter: the families below reproduce what their
// templates render (checked against transformers' `apply_chat_template` in ChatTemplateTests).
// A template that is not recognised still loads; `render` then throws an error quoting it.
//
// - ChatML (SmolLM2, Qwen2): `<|im_start|>{role}\n{content}<|im_end|>\n` per message; when the
//   first message is not a system message and the template carries a literal default system block
//   (`<|im_start|>system\n…<|im_end|>`), that block comes first; the generation prompt is
//   `<|im_start|>assistant\n`.
// - LLaVA-1.5 (llava-hf): `USER: ` / `ASSISTANT: ` before each message (system messages get no
//   prefix), then `<image>\n` per image, then the text and one space; the generation prompt is
//   `ASSISTANT:`.

/// One chat message.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// "system", "user" or "assistant".
    public var role: String
    /// The message text.
    public var content: String
    /// Number of images attached (rendered as `<image>` placeholders by templates that take images).
    public var images: Int

    public init(role: String, content: String, images: Int = 0) {
        self.role = role
        self.content = content
        self.images = images
    }

    private enum CodingKeys: String, CodingKey { case role, content, images }

    /// Decodes `{"role", "content", "images"?}` (`images` absent means 0).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        content = try c.decode(String.self, forKey: .content)
        images = try c.decodeIfPresent(Int.self, forKey: .images) ?? 0
    }
}

/// A model's chat template, implemented per family.
public struct ChatTemplate: Sendable, Equatable {
    /// The template families implemented here.
    public enum Family: Sendable, Equatable {
        /// `<|im_start|>role\ncontent<|im_end|>\n`, with the template's default system prompt (if any)
        /// when the conversation does not start with a system message.
        case chatML(defaultSystemPrompt: String?)
        /// LLaVA-1.5: `USER: <image>\n{text} ASSISTANT:`.
        case llava
        /// A template not recognised; `render` throws.
        case unrecognised
    }

    /// The family the template was recognised as.
    public let family: Family
    /// The template text it was recognised from, when it came from a file.
    public let source: String?

    /// A template of a known family (for models whose files carry no template, e.g. LLaVA-1.5 4.x).
    public init(family: Family) {
        self.family = family
        source = nil
    }

    /// Recognises a Jinja template's family; an unknown one gives `.unrecognised` (render throws).
    /// - Parameter source: the template text.
    public init(source: String) {
        self.source = source
        family = Self.recogniseFamily(source)
    }

    /// Recognises a Jinja template's family.
    /// - Throws: `.unsupported` quoting the template's first 60 characters when it is not recognised.
    public static func recognise(_ source: String) throws -> ChatTemplate {
        let template = ChatTemplate(source: source)
        if template.family == .unrecognised { throw template.unrecognisedError() }
        return template
    }

    /// The token that ends a turn (a stop token for generation), if the family has one.
    public var endOfTurnToken: String? {
        switch family {
        case .chatML: return "<|im_end|>"
        case .llava, .unrecognised: return nil
        }
    }

    /// The prompt text for a conversation.
    /// - Parameters:
    ///   - messages: the conversation so far.
    ///   - addGenerationPrompt: end with the assistant's turn opening (`<|im_start|>assistant\n`, `ASSISTANT:`).
    /// - Returns: the text to tokenize (with special tokens written out; encode it without adding BOS
    ///   unless the tokenizer's own rule says so).
    /// - Throws: `.unsupported` for an unrecognised template (quoting its first 60 characters) or
    ///   for images in a family that takes none; `.malformed` for an empty conversation (as
    ///   transformers refuses one).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        if family != .unrecognised && messages.isEmpty {
            throw ModelIOError(.malformed, path: "chat_template", "no messages to render (the conversation is empty)")
        }
        var out = ""
        switch family {
        case .unrecognised:
            throw unrecognisedError()
        case .chatML(let defaultSystem):
            for (i, message) in messages.enumerated() {
                if message.images > 0 {
                    throw ModelIOError(.unsupported, path: "chat_template",
                                       "message \(i) has \(message.images) image(s), but the ChatML template takes no images")
                }
                if i == 0, message.role != "system", let defaultSystem {
                    out += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
                }
                out += "<|im_start|>\(message.role)\n\(message.content)<|im_end|>\n"
            }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        case .llava:
            for message in messages {
                if message.role != "system" { out += message.role.uppercased() + ": " }
                out += String(repeating: "<image>\n", count: message.images)
                out += message.content + " "
            }
            if addGenerationPrompt { out += "ASSISTANT:" }
        }
        return out
    }

    private func unrecognisedError() -> ModelIOError {
        let head = (source ?? "").prefix(60).replacingOccurrences(of: "\n", with: "\\n")
        return ModelIOError(.unsupported, path: "chat_template", "unrecognised chat template '\(head)'")
    }

    private static func recogniseFamily(_ source: String) -> Family {
        if source.contains("<|im_start|>") && source.contains("<|im_end|>") {
            return .chatML(defaultSystemPrompt: defaultSystemPrompt(source))
        }
        if source.contains("ASSISTANT:") && (source.contains("USER:") || source.contains(".upper()")) {
            return .llava
        }
        return .unrecognised
    }

    /// The text of the first literal `<|im_start|>system\n…<|im_end|>` block in a ChatML template
    /// (with Jinja string escapes such as `\n` undone), or nil when the system block is built from
    /// variables.
    static func defaultSystemPrompt(_ source: String) -> String? {
        let marker = "<|im_start|>system"
        var rest = source[...]
        while let start = rest.range(of: marker) {
            rest = rest[start.upperBound...]
            var body = rest
            if body.hasPrefix("\n") {
                body = body.dropFirst()
            } else if body.hasPrefix("\\n") {
                body = body.dropFirst(2)
            } else {
                continue
            }
            guard let end = body.range(of: "<|im_end|>") else { return nil }
            let literal = body[..<end.lowerBound]
            if literal.contains("'") || literal.contains("\"") || literal.contains("{") || literal.contains("}") {
                continue
            }
            return unescapeJinja(String(literal))
        }
        return nil
    }

    private static func unescapeJinja(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = ""
        var it = s.makeIterator()
        while let c = it.next() {
            guard c == "\\", let e = it.next() else { out.append(c); continue }
            switch e {
            case "n": out.append("\n")
            case "t": out.append("\t")
            case "r": out.append("\r")
            default: out.append(e)
            }
        }
        return out
    }
}
