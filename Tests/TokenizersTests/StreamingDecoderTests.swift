// Streaming detokenisation: emoji and CJK characters split across byte-level tokens are never emitted in halves.
import Foundation
import TestSupport
import Tokenizers
import XCTest

final class StreamingDecoderTests: XCTestCase {
    /// Feeds `ids` one at a time; returns the chunks (finish() last).
    func stream(_ ids: [Int], _ decoder: inout StreamingDecoder) throws -> [String] {
        var chunks = try ids.map { try decoder.append($0) }
        chunks.append(decoder.finish())
        return chunks
    }

    func testEmojiSplitAcrossTokensIsNeverHalved() throws {
        let t = SmolLM.tokenizer
        let text = "ok 🤗🚀 👩\u{200D}💻 我爱自然语言处理。 done"
        let ids = t.encode(text)
        // The reference tokenisation splits 🤗 into "ĠðŁ", "¤", "Ĺ": a 4-byte character over three tokens.
        XCTAssertTrue(ids.contains(15107))
        var decoder = StreamingDecoder(tokenizer: t)
        let chunks = try stream(ids, &decoder)
        for chunk in chunks {
            XCTAssertFalse(chunk.unicodeScalars.contains("\u{FFFD}"), "chunk \(chunk.debugDescription) holds a broken character")
        }
        XCTAssertTrue(chunks.contains(""), "some token must leave its character unfinished")
        XCTAssertEqual(Array(chunks.joined().utf8), Array(try t.decode(ids).utf8))
        XCTAssertEqual(Array(chunks.joined().utf8), Array(text.utf8))
    }

    func testHoldsBackExactlyTheUnfinishedCharacter() throws {
        let t = SmolLM.tokenizer
        // Prompt 1's ids for " 🤗": "ĠðŁ" (20 F0 9F), "¤" (A4), "Ĺ" (97).
        var decoder = StreamingDecoder(tokenizer: t)
        XCTAssertEqual(try decoder.append(15107), " ")
        XCTAssertTrue(decoder.hasPendingBytes)
        XCTAssertEqual(try decoder.append(114), "")
        XCTAssertEqual(try decoder.append(241), "🤗")
        XCTAssertFalse(decoder.hasPendingBytes)
        XCTAssertEqual(decoder.finish(), "")
    }

    func testEndOfStreamAndInvalidBytes() throws {
        let t = SmolLM.tokenizer
        var decoder = StreamingDecoder(tokenizer: t)
        // A stream cut inside a character: the unfinished bytes become one U+FFFD at the end only.
        XCTAssertEqual(try decoder.append(15107), " ")
        XCTAssertEqual(try decoder.append(114), "")
        XCTAssertEqual(decoder.finish(), "\u{FFFD}")
        // A byte that can never start a character is released at once (as U+FFFD), not held.
        let stray = try XCTUnwrap(t.tokenID(for: ByteLevelAlphabet.symbol(for: 0xBF)))
        XCTAssertEqual(try decoder.append(stray), "\u{FFFD}")
        XCTAssertFalse(decoder.hasPendingBytes)
        // A lead byte followed by a non-continuation releases both.
        let lead = try XCTUnwrap(t.tokenID(for: ByteLevelAlphabet.symbol(for: 0xE4)))
        XCTAssertEqual(try decoder.append(lead), "")
        XCTAssertEqual(try decoder.append(t.encode("a")[0]), "\u{FFFD}a")
        XCTAssertThrowsError(try decoder.append(1 << 20))
        // Control tokens can be skipped.
        var skipping = StreamingDecoder(tokenizer: t, skipSpecialTokens: true)
        XCTAssertEqual(try stream([1, 4093, 198, 2], &skipping).joined(), "user\n")
    }

    /// Every line of the multilingual fixture, streamed token by token, reassembles exactly.
    func testStreamingEqualsFullDecodeOnMultilingualText() throws {
        let t = SmolLM.tokenizer
        for line in try utf8Lines("tokenizer/multilingual.txt") {
            var decoder = StreamingDecoder(tokenizer: t)
            let chunks = try stream(t.encode(line), &decoder)
            XCTAssertEqual(Array(chunks.joined().utf8), Array(line.utf8))
            XCTAssertFalse(chunks.joined().unicodeScalars.contains("\u{FFFD}"))
        }
    }
}
