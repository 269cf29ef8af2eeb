import Foundation
import XCTest
@testable import ModelIO

/// ChatTemplate against transformers' `apply_chat_template(tokenize=False)` (chat_golden.json, made
/// by Tools/make_bpe_fixtures.py): exact text equality.
final class ChatTemplateTests: XCTestCase {
    struct Golden: Decodable {
        struct Case: Decodable {
            let template: String
            let messages: [ChatMessage]
            let add_generation_prompt: Bool
            let text: String
        }
        let templates: [String: String]
        let cases: [Case]
    }

    func golden() throws -> Golden {
        let url = BPETokenizerTests.fixtures.appendingPathComponent("chat_golden.json")
        return try JSONDecoder().decode(Golden.self, from: Data(contentsOf: url))
    }

    func testRenderMatchesTransformers() throws {
        let g = try golden()
        XCTAssertGreaterThanOrEqual(g.cases.count, 20)
        for c in g.cases {
            let template = try ChatTemplate.recognise(try XCTUnwrap(g.templates[c.template]))
            let text = try template.render(messages: c.messages, addGenerationPrompt: c.add_generation_prompt)
            XCTAssertEqual(Array(text.unicodeScalars), Array(c.text.unicodeScalars), "\(c.template) \(c.messages)")
        }
    }

    func testFamiliesAndDefaultSystemPrompts() throws {
        let g = try golden()
        XCTAssertEqual(ChatTemplate(source: g.templates["smollm2"]!).family,
                       .chatML(defaultSystemPrompt: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
        XCTAssertEqual(ChatTemplate(source: g.templates["qwen2"]!).family,
                       .chatML(defaultSystemPrompt: "You are a helpful assistant."))
        XCTAssertEqual(ChatTemplate(source: g.templates["llava"]!).family, .llava)
        // Plain ChatML: the system block is built from variables, so there is no default prompt.
        let plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
        XCTAssertEqual(ChatTemplate(source: plain).family, .chatML(defaultSystemPrompt: nil))
        XCTAssertEqual(try ChatTemplate(source: plain).render(messages: [ChatMessage(role: "user", content: "Hi")],
                                                                addGenerationPrompt: true),
                       "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
        XCTAssertEqual(ChatTemplate(source: plain).endOfTurnToken, "<|im_end|>")
        XCTAssertNil(ChatTemplate(family: .llava).endOfTurnToken)
    }

    func testFolderTemplateLoadsAndStopsOnEndOfTurn() throws {
        let tokenizer = try BPETokenizer(folder: BPETokenizerTests.fixtures.appendingPathComponent("qwen2"))
        let template = try XCTUnwrap(tokenizer.chatTemplate)
        XCTAssertEqual(template.family, .chatML(defaultSystemPrompt: "You are a helpful assistant."))
        XCTAssertEqual(tokenizer.stopTokenIds, [tokenizer.tokenId(for: "<|im_end|>")!])
    }

    func testErrors() throws {
        let unknown = "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %} and a long tail that is cut"
        XCTAssertThrowsError(try ChatTemplate.recognise(unknown)) { error in
            XCTAssertEqual((error as? ModelIOError)?.kind, .unsupported)
            XCTAssertTrue("\(error)".contains(String(unknown.prefix(60))), "\(error)")
            XCTAssertFalse("\(error)".contains("long tail"), "\(error)")
        }
        let loaded = ChatTemplate(source: unknown)
        XCTAssertEqual(loaded.family, .unrecognised)
        XCTAssertThrowsError(try loaded.render(messages: [ChatMessage(role: "user", content: "x")], addGenerationPrompt: true)) {
            XCTAssertTrue("\($0)".contains("[INST]"), "\($0)")
        }
        let chatML = ChatTemplate(family: .chatML(defaultSystemPrompt: nil))
        XCTAssertThrowsError(try chatML.render(messages: [], addGenerationPrompt: true))
        XCTAssertThrowsError(try chatML.render(messages: [ChatMessage(role: "user", content: "x", images: 1)],
                                               addGenerationPrompt: true)) {
            XCTAssertTrue("\($0)".contains("image"), "\($0)")
        }
    }
}
