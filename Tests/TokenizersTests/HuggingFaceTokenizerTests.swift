// Loading tokenizer.json / tokenizer_config.json: a tiny hand-written BPE whose encodings are worked out by
// hand in the comments, with merges in both of the file format's spellings.
import Foundation
import TestSupport
import Tokenizers
import XCTest

final class HuggingFaceTokenizerTests: XCTestCase {
    let stringMerges = Fixtures.url("tokenizer/tiny_tokenizer.json")
    let pairMerges = Fixtures.url("tokenizer/tiny_tokenizer_pair_merges.json")
    let configURL = Fixtures.url("tokenizer/tiny_tokenizer_config.json")

    func load(_ url: URL, withConfig: Bool = true) throws -> BPETokenizer {
        try BPETokenizer(huggingFaceTokenizer: url, config: withConfig ? try TokenizerConfig(contentsOf: configURL) : nil)
    }

    /// Both merge spellings give the same tokenizer, and it encodes as worked out by hand.
    func testMergeFormatsAgreeAndEncodeByRank() throws {
        for url in [stringMerges, pairMerges] {
            let t = try load(url)
            XCTAssertEqual(t.vocabularySize, 35)
            XCTAssertEqual(t.preTokenizer, .gpt2)
            XCTAssertEqual(t.specialTokenIDs, SpecialTokenIDs(bos: 1, eos: 2, unknown: 0, padding: nil))
            XCTAssertTrue(t.addsBOS)
            // "hello": h e → he (rank 0), l l → ll (1), "l o" (2) is stale, he ll → hell (3), hell o → hello (4).
            // " world": Ġ w (5), o r (6), Ġw or (7), Ġwor l (8), Ġworl d (9).
            XCTAssertEqual(t.encode("hello world!"), [1, 28, 33, 5])
            XCTAssertEqual(t.encode("hello world!", addSpecialTokens: false, parseSpecialTokens: true), [28, 33, 5])
            XCTAssertEqual(t.encode("llo", addSpecialTokens: false, parseSpecialTokens: true), [25, 17])  // l l before l o
            XCTAssertEqual(t.encode("lol", addSpecialTokens: false, parseSpecialTokens: true), [26, 16])
            XCTAssertEqual(t.encode("yes", addSpecialTokens: false, parseSpecialTokens: true), [22, 14, 19])
            // "z" has no byte-level token: the unknown id.
            XCTAssertEqual(t.encode("az", addSpecialTokens: false, parseSpecialTokens: true), [11, 0])
        }
    }

    func testAddedTokensAndDecoding() throws {
        let t = try load(stringMerges)
        XCTAssertEqual(t.encode("<|eos|>hello", addSpecialTokens: false, parseSpecialTokens: true), [2, 28])
        // Unparsed: "<|", "eos", "|>", "hello" as ordinary pieces.
        XCTAssertEqual(t.encode("<|eos|>hello", addSpecialTokens: false, parseSpecialTokens: false),
                       [8, 10, 14, 17, 19, 10, 9, 28])
        // "<tool>" is a non-special added token (always matched) with rstrip: the following spaces are absorbed.
        XCTAssertEqual(t.encode("a<tool>  b", addSpecialTokens: false, parseSpecialTokens: false), [11, 34, 12])
        XCTAssertEqual(t.tokenTypes[34], .userDefined)
        XCTAssertEqual(t.tokenTypes[2], .control)
        XCTAssertEqual(try t.decode([1, 28, 33, 5, 34]), "<|bos|>hello world!<tool>")
        XCTAssertEqual(try t.decode([1, 28, 33, 5, 34], skipSpecialTokens: true), "hello world!<tool>")
        for text in ["hello world, hello", "yes.\nall_to_wd", "  the  old   rows  "] {
            XCTAssertEqual(try t.decode(t.encode(text)), "<|bos|>" + text)
        }
    }

    /// Without tokenizer_config.json, BOS comes from the TemplateProcessing post-processor.
    func testPostProcessorSuppliesBOSWithoutConfig() throws {
        let t = try load(pairMerges, withConfig: false)
        XCTAssertEqual(t.specialTokenIDs.bos, 1)
        XCTAssertNil(t.specialTokenIDs.eos)
        XCTAssertEqual(t.specialTokenIDs.unknown, 0)
        XCTAssertTrue(t.addsBOS)
        XCTAssertEqual(t.encode("hello"), [1, 28])
    }

    func testConfigAndChatTemplate() throws {
        let config = try TokenizerConfig(contentsOf: configURL)
        XCTAssertEqual(config.bosToken, "<|bos|>")
        XCTAssertEqual(config.eosToken, "<|eos|>")
        XCTAssertNil(config.paddingToken)
        XCTAssertEqual(config.addBOSToken, true)
        let template = try ChatTemplate(template: try XCTUnwrap(config.chatTemplate))
        XCTAssertEqual(template.format, .chatML)
        // The template spells its newlines and quotes as Jinja escapes (\n, \').
        XCTAssertEqual(template.defaultSystemPrompt, "You are tiny, and 'quoted'.")
    }

    /// Unsupported or broken files are typed errors naming the file and field.
    func testRejectsUnsupportedAndMalformedFiles() throws {
        func variant(_ edit: (inout [String: Any]) -> Void) throws -> URL {
            var root = try JSONSerialization.jsonObject(with: Data(contentsOf: stringMerges)) as! [String: Any]
            edit(&root)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString).json")
            try JSONSerialization.data(withJSONObject: root).write(to: url)
            return url
        }
        func model(_ root: inout [String: Any], _ key: String, _ value: Any) {
            var m = root["model"] as! [String: Any]; m[key] = value; root["model"] = m
        }
        let cases: [(URL, TokenizerError)] = [
            (try variant { model(&$0, "type", "WordPiece") }, .unsupported(path: "", field: "model.type", value: "WordPiece")),
            (try variant { model(&$0, "byte_fallback", true) }, .unsupported(path: "", field: "model.byte_fallback", value: "true")),
            (try variant { model(&$0, "merges", ["h e", "he"]) }, .malformedMerge(source: "", index: 1, merge: "he")),
            (try variant { model(&$0, "merges", [["h", "q"]]) }, .mergeTokenMissing(source: "", index: 0, merge: "h q", token: "q")),
            (try variant { $0["pre_tokenizer"] = ["type": "Whitespace"] }, .unsupported(path: "", field: "pre_tokenizer.type", value: "Whitespace")),
            (try variant { $0["normalizer"] = ["type": "Lowercase"] }, .unsupported(path: "", field: "normalizer.type", value: "Lowercase")),
        ]
        for (url, expected) in cases {
            defer { try? FileManager.default.removeItem(at: url) }
            XCTAssertThrowsError(try BPETokenizer(huggingFaceTokenizer: url)) { error in
                let message = "\(error)"
                XCTAssertTrue(message.contains(url.lastPathComponent), message)
                // Same case and payload once the path is blanked out.
                let blanked = message.replacingOccurrences(of: url.path, with: "")
                XCTAssertEqual(blanked, expected.description, message)
            }
        }
        XCTAssertThrowsError(try BPETokenizer(huggingFaceTokenizer: Fixtures.url("tokenizer/missing.json"))) { error in
            guard case .fileUnreadable(let path, _)? = error as? TokenizerError else { return XCTFail("\(error)") }
            XCTAssertTrue(path.hasSuffix("missing.json"))
        }
    }

    /// ignore_merges (Llama 3) emits a piece that is a vocabulary entry as is; an NFC normalizer composes input.
    func testIgnoreMergesAndNFCNormalizer() throws {
        func load(_ edit: (inout [String: Any]) -> Void) throws -> BPETokenizer {
            var root = try JSONSerialization.jsonObject(with: Data(contentsOf: stringMerges)) as! [String: Any]
            edit(&root)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: url) }
            try JSONSerialization.data(withJSONObject: root).write(to: url)
            return try BPETokenizer(huggingFaceTokenizer: url)
        }
        func setModel(_ root: inout [String: Any], ignoreMerges: Bool) {
            var model = root["model"] as! [String: Any]
            var vocab = model["vocab"] as! [String: Any]
            vocab["yes"] = 35   // reachable by no merge
            model["vocab"] = vocab
            model["ignore_merges"] = ignoreMerges
            root["model"] = model
        }
        let merging = try load { setModel(&$0, ignoreMerges: false) }
        let whole = try load { setModel(&$0, ignoreMerges: true) }
        XCTAssertFalse(merging.ignoresMerges)
        XCTAssertTrue(whole.ignoresMerges)
        XCTAssertEqual(merging.encode("yes yes", addSpecialTokens: false, parseSpecialTokens: true), [22, 14, 19, 3, 22, 14, 19])
        XCTAssertEqual(whole.encode("yes yes", addSpecialTokens: false, parseSpecialTokens: true), [35, 3, 22, 14, 19])

        let nfc = try load { $0["normalizer"] = ["type": "NFC"] }
        XCTAssertTrue(nfc.normalizesToNFC)
        XCTAssertEqual(nfc.encode("he\u{301}llo"), nfc.encode("h\u{E9}llo"))
        let plain = try load { _ in }
        XCTAssertNotEqual(plain.encode("he\u{301}llo"), plain.encode("h\u{E9}llo"))
    }

    /// Sequence pre-tokenizers map to the named rules.
    func testPreTokenizerShapes() throws {
        func load(preTokenizer: [String: Any]) throws -> BPETokenizer {
            var root = try JSONSerialization.jsonObject(with: Data(contentsOf: stringMerges)) as! [String: Any]
            root["pre_tokenizer"] = preTokenizer
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: url) }
            try JSONSerialization.data(withJSONObject: root).write(to: url)
            return try BPETokenizer(huggingFaceTokenizer: url)
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": false, "use_regex": true]
        let smollm = try load(preTokenizer: ["type": "Sequence", "pretokenizers": [
            ["type": "Digits", "individual_digits": true], byteLevel]])
        XCTAssertEqual(smollm.preTokenizer, .smollm)
        let llama3Regex = PreTokenizerTests.llama3Pattern
        let llama3 = try load(preTokenizer: ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": llama3Regex], "behavior": "Isolated", "invert": false],
            ["type": "ByteLevel", "add_prefix_space": false, "use_regex": false]]])
        XCTAssertEqual(llama3.preTokenizer, .llama3)
        XCTAssertThrowsError(try load(preTokenizer: ["type": "Sequence", "pretokenizers": [
            ["type": "Split", "pattern": ["Regex": "\\w+"], "behavior": "Isolated", "invert": false], byteLevel]]))
    }
}
