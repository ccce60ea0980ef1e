// BPETokenizer → tokenizer.json / tokenizer_config.json → BPETokenizer(huggingFaceTokenizer:) gives the same
// tokenizer: SmolLM2's vocabulary on transformers' reference prompts, and a small vocabulary under every
// pre-tokenizer that has a tokenizer.json form, with and without BOS/EOS added.
import XCTest
import Foundation
import TestSupport
import Tokenizers

final class HuggingFaceTokenizerWriterTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "tokwriter")
    }

    /// Writes the files and reads them back as `ModelLoader` does.
    func roundTrip(_ tokenizer: BPETokenizer, chatTemplate: String? = nil) throws -> (BPETokenizer, TokenizerConfig) {
        let files = try tokenizer.huggingFaceFiles(chatTemplate: chatTemplate, modelMaxLength: 2048)
        let json = directory.appendingPathComponent("tokenizer.json"), config = directory.appendingPathComponent("tokenizer_config.json")
        try files.tokenizer.write(to: json); try files.tokenizerConfig.write(to: config)
        let map = try XCTUnwrap(try JSONSerialization.jsonObject(with: files.specialTokensMap) as? [String: String])
        if let bos = tokenizer.specialTokenIDs.bos { XCTAssertEqual(map["bos_token"], tokenizer.tokens[bos]) }
        let parsed = try TokenizerConfig(contentsOf: config)
        return (try BPETokenizer(huggingFaceTokenizer: json, config: parsed), parsed)
    }

    func testSmolLMVocabularyEncodesReferencePromptsIdentically() throws {
        let original = SmolLM.tokenizer
        let (written, config) = try roundTrip(original, chatTemplate: SmolLM.fixture.chatTemplate)
        XCTAssertEqual(config.chatTemplate, SmolLM.fixture.chatTemplate)
        XCTAssertEqual(config.addBOSToken, false)
        XCTAssertEqual(written.vocabularySize, original.vocabularySize)
        XCTAssertEqual(written.specialTokenIDs, original.specialTokenIDs)
        XCTAssertEqual(written.addedTokens.map(\.id), original.addedTokens.map(\.id))
        let prompts = try ReferencePrompt.loadAll()
        XCTAssertGreaterThan(prompts.count, 5)
        for prompt in prompts {
            XCTAssertEqual(written.encode(prompt.text, addSpecialTokens: true, parseSpecialTokens: true), prompt.ids, prompt.text)
            XCTAssertEqual(try written.decode(prompt.ids, skipSpecialTokens: false), prompt.decoded)
        }
        let chat = "<|im_start|>user\nWhat is 12 + 30?<|im_end|>\n<|im_start|>assistant\n"
        XCTAssertEqual(written.encode(chat, addSpecialTokens: false, parseSpecialTokens: true),
                       original.encode(chat, addSpecialTokens: false, parseSpecialTokens: true))
    }

    func testEveryPreTokenizerWithATokenizerJSONFormRoundTrips() throws {
        let v = TinyLlamaGGUF.vocabulary
        let texts = ["Hello world and the string", "  is 12345 or 2021/3/5?\n\nthe END  ", "she's there, isn't it\r\n ok", "ünïcödé"]
        for rule in [PreTokenizer.gpt2, .smollm, .llama3, .qwen2] {
            for addBOS in [false, true] {
                let original = try BPETokenizer(vocabulary: v.tokens, merges: v.merges, tokenTypes: v.types, preTokenizer: rule,
                                                specialTokenIDs: SpecialTokenIDs(bos: 1, eos: 2, unknown: 0, padding: 2),
                                                addBOS: addBOS, addEOS: addBOS, normalizeToNFC: rule == .qwen2)
                let (written, _) = try roundTrip(original)
                XCTAssertEqual(written.preTokenizer, rule)
                XCTAssertEqual(written.ignoresMerges, original.ignoresMerges, "\(rule)")
                XCTAssertEqual(written.normalizesToNFC, original.normalizesToNFC, "\(rule)")
                XCTAssertEqual([written.addsBOS, written.addsEOS], [addBOS, addBOS], "\(rule)")
                for text in texts {
                    let ids = original.encode(text, addSpecialTokens: true, parseSpecialTokens: true)
                    XCTAssertEqual(written.encode(text, addSpecialTokens: true, parseSpecialTokens: true), ids, "\(rule): \(text)")
                    XCTAssertEqual(try written.decode(ids, skipSpecialTokens: true), try original.decode(ids, skipSpecialTokens: true))
                }
            }
        }
    }

    func testFallbackRuleHasNoTokenizerJSONForm() throws {
        let v = TinyLlamaGGUF.vocabulary
        let tokenizer = try BPETokenizer(vocabulary: v.tokens, merges: v.merges, tokenTypes: v.types, preTokenizer: .bpeDefault,
                                         specialTokenIDs: SpecialTokenIDs(unknown: 0), addBOS: false)
        XCTAssertThrowsError(try tokenizer.huggingFaceFiles(chatTemplate: nil, modelMaxLength: nil, path: "out/tokenizer.json")) {
            guard case .unsupported(let path, let field, _)? = $0 as? TokenizerError else { return XCTFail("\($0)") }
            XCTAssertEqual([path, field], ["out/tokenizer.json", "pre_tokenizer"])
        }
    }
}
