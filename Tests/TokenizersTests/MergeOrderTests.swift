// The heap-based merge loop against a direct transcription of BPE (repeatedly merge the lowest-ranked
// adjacent pair, leftmost first) working on strings, over SmolLM2's 48900 merges.
import Foundation
import TestSupport
import Tokenizers
import XCTest

final class MergeOrderTests: XCTestCase {
    /// Reference BPE of one pre-tokenizer piece: symbols are byte-level strings, O(n²) per piece.
    static func referenceBPE(_ piece: String, ranks: [String: Int], vocabulary: [String: Int]) -> [Int] {
        var symbols = ByteLevelAlphabet.encode(Array(piece.utf8)).unicodeScalars.map { String($0) }
        while symbols.count > 1 {
            var best: (rank: Int, index: Int)?
            for k in 0..<(symbols.count - 1) {
                if let rank = ranks[symbols[k] + " " + symbols[k + 1]], best == nil || rank < best!.rank {
                    best = (rank, k)
                }
            }
            guard let (_, k) = best else { break }
            symbols[k] += symbols[k + 1]
            symbols.remove(at: k + 1)
        }
        return symbols.map { vocabulary[$0] ?? 0 }   // a byte without a token is the unknown id (0)
    }

    func testHeapMergeEqualsReferenceOnLongAndShortPieces() throws {
        let fixture = SmolLM.fixture
        var ranks: [String: Int] = [:]
        for (rank, merge) in fixture.merges.enumerated() where ranks[merge] == nil { ranks[merge] = rank }
        var vocabulary: [String: Int] = [:]
        for (id, token) in fixture.tokens.enumerated() where vocabulary[token] == nil { vocabulary[token] = id }
        let t = SmolLM.tokenizer

        var texts = try utf8Lines("tokenizer/multilingual.txt")
        // Long pieces (beyond the word cache's 64 scalars) and repetitive ones where equal ranks compete.
        texts.append(String(repeating: "ab", count: 150))
        texts.append(String(repeating: "a", count: 257))
        texts.append(String(repeating: "自然语言处理", count: 40))
        texts.append(String(repeating: "=", count: 100) + String(repeating: " ", count: 70) + "x")
        var compared = 0
        for text in texts {
            var expected: [Int] = []
            for piece in t.preTokenizer.split(text) {
                expected += Self.referenceBPE(piece, ranks: ranks, vocabulary: vocabulary)
                compared += 1
            }
            XCTAssertEqual(t.encode(text, addSpecialTokens: false, parseSpecialTokens: false), expected,
                           text.debugDescription)
        }
        XCTAssertGreaterThan(compared, 300)
    }
}
