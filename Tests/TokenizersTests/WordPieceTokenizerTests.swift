// all-MiniLM-L6-v2's WordPiece tokenizer against Hugging Face: the six fixture sentences (padded batch, masks,
// pieces) and ~400 cases written by scripts/reference/minilm_tokenizer_cases.py with `tokenizers` (edge cases,
// seeded random strings across scripts, pairs with longest-first truncation). Skipped when the model is not
// downloaded (scripts/fetch-models.sh); the small-vocabulary tests below always run.
import Foundation
import TestSupport
import Tokenizers
import XCTest

enum MiniLMTokenizer {
    static let url = Fixtures.modelsDirectory.appendingPathComponent("minilm/tokenizer.json")
    static let loaded: Result<WordPieceTokenizer, Error> = Result { try WordPieceTokenizer(huggingFaceTokenizer: url) }
    static func load() throws -> WordPieceTokenizer {
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("\(url.path) not present (run scripts/fetch-models.sh)") }
        return try loaded.get()
    }
}

final class WordPieceTokenizerTests: XCTestCase {
    func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("minilm/\(name)"))) as! [String: Any]
    }

    func testFixtureSentencesBatch() throws {
        let t = try MiniLMTokenizer.load()
        let o = try json("sentences.json")
        let sentences = o["sentences"] as! [String]
        let ids = (o["input_ids"] as! [[Int]]).map { $0.map(Int32.init) }
        let mask = (o["attention_mask"] as! [[Int]]).map { $0.map(Int32.init) }
        let batch = t.batch(sentences, maxLength: o["max_seq_length"] as? Int)
        XCTAssertEqual(batch.ids, ids)
        XCTAssertEqual(batch.attentionMask, mask)
        XCTAssertEqual(batch.typeIDs, ids.map { $0.map { _ in 0 } })
        for (row, pieces) in (o["tokens"] as! [[String]]).enumerated() {
            XCTAssertEqual(batch.ids[row].map { t.token(for: Int($0))! }, pieces, "sentence \(row)")
        }
        XCTAssertEqual(t.specialTokenIDs, SpecialTokenIDs(bos: 101, eos: 102, unknown: 100, padding: 0))
        XCTAssertEqual(t.vocabularySize, 30522)
    }

    func testReferenceCases() throws {
        let t = try MiniLMTokenizer.load()
        let o = try json("tokenizer_cases.json")
        let singles = o["singles"] as! [[String: Any]]
        XCTAssertGreaterThan(singles.count, 150)
        var failures = 0
        for c in singles {
            let text = c["text"] as! String
            let got = t.encode(text)
            if got != c["ids"] as! [Int] { failures += 1; XCTAssertEqual(got, c["ids"] as! [Int], "text \(text.debugDescription)") }
        }
        for c in o["pairs"] as! [[String: Any]] {
            let e = t.encoding(c["text"] as! String, pair: c["pair"] as? String, maxLength: c["max_length"] as? Int)
            XCTAssertEqual(e.ids, c["ids"] as! [Int], "pair \(c)")
            XCTAssertEqual(e.typeIDs, c["type_ids"] as! [Int], "pair \(c)")
        }
        for c in o["truncated"] as! [[String: Any]] {
            let e = t.encoding(c["text"] as! String, maxLength: c["max_length"] as? Int)
            XCTAssertEqual(e.ids, c["ids"] as! [Int], "truncated \(c)")
            XCTAssertEqual(e.truncated, t.encode(c["text"] as! String).count > c["max_length"] as! Int)
        }
        XCTAssertEqual(failures, 0)
    }

    func testDecodeJoinsContinuations() throws {
        let t = try MiniLMTokenizer.load()
        let ids = t.encode("The unaffable swimmers don't stop.")
        XCTAssertEqual(try t.decode(ids, skipSpecialTokens: true), "the unaffable swimmers don't stop.")
        XCTAssertThrowsError(try t.decode([40000], skipSpecialTokens: false))
    }

    /// A toy vocabulary: greedy longest match, ## continuations, [UNK] for uncoverable and over-long words.
    func testGreedyLongestMatchOnToyVocabulary() throws {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "un", "##aff", "##able", "aff", "able", "##a", "!", "x"]
        let t = try WordPieceTokenizer(vocabulary: vocab, maxInputCharsPerWord: 9,
                                       addedTokens: [0, 1, 2, 3].map { AddedToken(id: $0, content: vocab[$0]) })
        XCTAssertEqual(t.encode("Unaffable!"), [2, 4, 5, 6, 10, 3])
        XCTAssertEqual(t.encode("unq able", addSpecialTokens: false, parseSpecialTokens: true), [1, 8])
        XCTAssertEqual(t.encode("xxxxxxxxxx", addSpecialTokens: false, parseSpecialTokens: true), [1])  // 10 > 9 scalars
        XCTAssertEqual(t.encode("[SEP]x", addSpecialTokens: false, parseSpecialTokens: true), [3, 11])
        let pair = t.encoding("un un un un", pair: "x", maxLength: 5)
        XCTAssertEqual(pair.ids, [2, 4, 3, 11, 3]); XCTAssertEqual(pair.typeIDs, [0, 0, 0, 1, 1]); XCTAssertTrue(pair.truncated)
        let batch = t.batch([t.encoding("x"), t.encoding("x x x")], padding: .longest)
        XCTAssertEqual(batch.ids, [[2, 11, 3, 0, 0], [2, 11, 11, 11, 3]])
        XCTAssertEqual(batch.attentionMask, [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    }

    func testUnsupportedModelTypeIsTypedError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("wp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("tokenizer.json")
        try Data(#"{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try HuggingFaceTokenizerFile.load(url)) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupported(path: url.path, field: "model.type", value: "Unigram"))
            XCTAssertTrue("\(error)".contains("tokenizer.json: unsupported model.type Unigram"))
        }
        XCTAssertThrowsError(try WordPieceTokenizer(huggingFaceTokenizer: url))
        try Data(#"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "pre_tokenizer": {"type": "Whitespace"}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try HuggingFaceTokenizerFile.load(url)) { error in
            XCTAssertEqual(error as? TokenizerError, .unsupported(path: url.path, field: "pre_tokenizer.type", value: "Whitespace"))
        }
    }
}
