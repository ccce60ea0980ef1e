// Chat templates: format detection, default system prompts read from the template, and SmolLM2's rendering
// of reference prompt 5 (text and ids).
import Foundation
import TestSupport
import Tokenizers
import XCTest

final class ChatTemplateTests: XCTestCase {
    func testSmolLMTemplateReproducesReferencePrompt() throws {
        let template = try ChatTemplate(template: SmolLM.fixture.chatTemplate)
        XCTAssertEqual(template.format, .chatML)
        XCTAssertEqual(template.defaultSystemPrompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        let reference = try ReferencePrompt.loadAll()[5]
        let rendered = template.render([.user("What is the capital of France?")], addGenerationPrompt: true)
        XCTAssertEqual(Array(rendered.utf8), Array(reference.text.utf8))
        XCTAssertEqual(SmolLM.tokenizer.encode(rendered), reference.ids)
        XCTAssertEqual(SmolLM.tokenizer.encode(rendered, addSpecialTokens: false, parseSpecialTokens: true), reference.ids)
    }

    func testChatMLWithExplicitSystemAndWithoutGenerationPrompt() throws {
        let template = try ChatTemplate(template: SmolLM.fixture.chatTemplate)
        let text = template.render([.system("Be brief."), .user("Hi"), .assistant("Hello.")], addGenerationPrompt: false)
        XCTAssertEqual(text, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n")
        XCTAssertEqual(template.render([], addGenerationPrompt: true), "<|im_start|>assistant\n")
    }

    func testLlama3Format() throws {
        let llama3 = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
        let template = try ChatTemplate(template: llama3)
        XCTAssertEqual(template.format, .llama3)
        XCTAssertTrue(template.trimsContent)
        XCTAssertNil(template.defaultSystemPrompt)
        XCTAssertEqual(template.render([.system(" Be brief.\n"), .user("Hi")]),
                       "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                       + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                       + "<|start_header_id|>assistant<|end_header_id|>\n\n")
    }

    func testUnknownTemplateSuggestsOverride() throws {
        let gemma = "{% for message in messages %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] }}<end_of_turn>\n{% endfor %}"
        XCTAssertThrowsError(try ChatTemplate(template: gemma)) { error in
            guard case .unrecognizedTemplate? = error as? ChatTemplateError else { return XCTFail("\(error)") }
            XCTAssertTrue("\(error)".contains("--chat-format chatml|llama3"), "\(error)")
        }
        XCTAssertThrowsError(try ChatTemplate(template: nil, formatOverride: nil)) { error in
            XCTAssertEqual(error as? ChatTemplateError, .missingTemplate)
        }
        XCTAssertThrowsError(try ChatTemplate(template: gemma, formatOverride: "alpaca")) { error in
            XCTAssertEqual(error as? ChatTemplateError, .unknownFormatName("alpaca"))
        }
        // The override wins over an unrecognised template; no default system prompt is invented.
        let forced = try ChatTemplate(template: gemma, formatOverride: "chatml")
        XCTAssertEqual(forced, ChatTemplate(format: .chatML))
        // With a template of the same layout, its default system prompt is kept.
        let smol = try ChatTemplate(template: SmolLM.fixture.chatTemplate, formatOverride: "ChatML")
        XCTAssertEqual(smol.defaultSystemPrompt, "You are a helpful AI assistant named SmolLM, trained by Hugging Face")
    }

    /// Qwen 2.5 writes its default system prompt in an else branch; raw text outside tags is not a literal.
    func testDefaultSystemPromptInElseBranch() throws {
        let qwen = "It's raw text '<|im_start|>system\nNot this<|im_end|>'{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- \"<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n\" }}{%- endif %}"
        let template = try ChatTemplate(template: qwen)
        XCTAssertEqual(template.defaultSystemPrompt, "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
        XCTAssertNil(try ChatTemplate(template: "{{ '<|im_start|>' + role }}").defaultSystemPrompt)
    }
}
