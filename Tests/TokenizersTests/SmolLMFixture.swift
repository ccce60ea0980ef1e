// Loads the SmolLM2 tokenizer from Tests/Fixtures/smollm/tokenizer_vocab.json (exported from the GGUF by
// scripts/reference/export_smollm_tokenizer.py) and the reference tokenisations in tokens.json.
import Foundation
import TestSupport
import Tokenizers

struct SmolLMVocabularyFixture {
    let tokens: [String]
    let merges: [String]
    let tokenTypes: [Int32]
    let pre: String
    let bos: Int, eos: Int, unknown: Int, padding: Int
    let addBOS: Bool
    let chatTemplate: String

    static func load() throws -> SmolLMVocabularyFixture {
        let data = try Data(contentsOf: Fixtures.url("smollm/tokenizer_vocab.json"))
        let o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return SmolLMVocabularyFixture(
            tokens: o["tokens"] as! [String], merges: o["merges"] as! [String],
            tokenTypes: (o["token_types"] as! [Int]).map(Int32.init), pre: o["pre"] as! String,
            bos: o["bos_token_id"] as! Int, eos: o["eos_token_id"] as! Int,
            unknown: o["unknown_token_id"] as! Int, padding: o["padding_token_id"] as! Int,
            addBOS: o["add_bos_token"] as! Bool, chatTemplate: o["chat_template"] as! String)
    }

    func makeTokenizer() throws -> BPETokenizer {
        try BPETokenizer(vocabulary: tokens, merges: merges, tokenTypes: tokenTypes,
                         preTokenizer: try PreTokenizer(ggufName: pre),
                         specialTokenIDs: SpecialTokenIDs(bos: bos, eos: eos, unknown: unknown, padding: padding),
                         addBOS: addBOS, source: "tokenizer_vocab.json")
    }
}

/// One reference tokenisation: transformers' tokenizer built from the same GGUF.
struct ReferencePrompt {
    let text: String
    let ids: [Int]
    let tokens: [String]
    let decoded: String

    static func loadAll() throws -> [ReferencePrompt] {
        let data = try Data(contentsOf: Fixtures.url("smollm/tokens.json"))
        let o = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        return (o["prompts"] as! [[String: Any]]).map {
            ReferencePrompt(text: $0["text"] as! String, ids: $0["ids"] as! [Int],
                            tokens: $0["tokens"] as! [String], decoded: $0["decoded"] as! String)
        }
    }
}

/// Shared instances: the 49152-token vocabulary takes a moment to build.
enum SmolLM {
    static let fixture: SmolLMVocabularyFixture = try! SmolLMVocabularyFixture.load()
    static let tokenizer: BPETokenizer = try! fixture.makeTokenizer()
}

/// Lines of a UTF-8 file split at "\n" bytes only (a "\r" stays at the end of its line).
func utf8Lines(_ relativePath: String) throws -> [String] {
    let data = try Data(contentsOf: Fixtures.url(relativePath))
    return data.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
}
