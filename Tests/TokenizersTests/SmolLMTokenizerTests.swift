// SmolLM2's byte-level BPE against transformers' tokenisation of the same GGUF vocabulary.
import Foundation
import TestSupport
import Tokenizers
import XCTest

final class SmolLMTokenizerTests: XCTestCase {
    func testVocabularyMetadata() throws {
        let t = SmolLM.tokenizer
        XCTAssertEqual(t.vocabularySize, 49152)
        XCTAssertEqual(t.preTokenizer, .smollm)
        XCTAssertEqual(t.specialTokenIDs, SpecialTokenIDs(bos: 1, eos: 2, unknown: 0, padding: 2))
        XCTAssertFalse(t.addsBOS)
        XCTAssertEqual(t.token(for: 1), "<|im_start|>")
        XCTAssertEqual(t.tokenID(for: "<|im_end|>"), 2)
        XCTAssertEqual(t.tokenTypes.filter { $0 == .control }.count, 17)
        XCTAssertEqual(t.addedTokens.count, 17)
    }

    /// All six reference prompts: ids, token strings and decoded text equal transformers' output.
    func testMatchesReferenceIDsForAllPrompts() throws {
        let t = SmolLM.tokenizer
        let prompts = try ReferencePrompt.loadAll()
        XCTAssertEqual(prompts.count, 6)
        for (k, p) in prompts.enumerated() {
            let ids = t.encode(p.text)
            XCTAssertEqual(ids, p.ids, "prompt \(k)")
            XCTAssertEqual(ids.map { t.token(for: $0)! }, p.tokens, "prompt \(k)")
            XCTAssertEqual(Array(try t.decode(p.ids).utf8), Array(p.decoded.utf8), "prompt \(k)")
        }
    }

    /// Control tokens are single ids when parsed, and ordinary characters when not.
    func testSpecialTokensAreAtomic() throws {
        let t = SmolLM.tokenizer
        XCTAssertEqual(t.encode("<|im_start|><|im_end|><|endoftext|>"), [1, 2, 0])
        // Glued to text on both sides, still one id each.
        let glued = t.encode("x<|im_end|>y")
        XCTAssertEqual(glued.count, 3)
        XCTAssertEqual(glued[1], 2)
        XCTAssertEqual(glued[0], t.encode("x")[0])
        // Not parsed: several ordinary ids, none special, same text back.
        let plain = t.encode("<|im_end|>", addSpecialTokens: true, parseSpecialTokens: false)
        XCTAssertGreaterThan(plain.count, 1)
        XCTAssertFalse(plain.contains { t.tokenTypes[$0] == .control })
        XCTAssertEqual(try t.decode(plain), "<|im_end|>")
        // A partial marker is text.
        XCTAssertFalse(t.encode("<|im_end").contains(2))
        // Skipping special tokens when decoding.
        XCTAssertEqual(try t.decode([1, 4093, 198, 2], skipSpecialTokens: true), "user\n")
    }

    /// decode(encode(line)) reproduces every line's bytes exactly (NFC and NFD kept apart), and the whole file.
    func testMultilingualRoundTripIsByteExact() throws {
        let t = SmolLM.tokenizer
        let lines = try utf8Lines("tokenizer/multilingual.txt")
        XCTAssertGreaterThan(lines.count, 20)
        for line in lines {
            let ids = t.encode(line)
            XCTAssertEqual(Array(try t.decode(ids).utf8), Array(line.utf8), "line \(line.debugDescription)")
            let plain = t.encode(line, addSpecialTokens: false, parseSpecialTokens: false)
            XCTAssertEqual(Array(try t.decode(plain).utf8), Array(line.utf8))
        }
        let whole = lines.joined(separator: "\n")
        XCTAssertEqual(Array(try t.decode(t.encode(whole)).utf8), Array(whole.utf8))
        // NFC and NFD spellings tokenise differently (no hidden normalisation).
        XCTAssertNotEqual(t.encode("Café"), t.encode("Cafe\u{301}"))
    }

    /// Ids outside the vocabulary are typed errors; single-byte tokens decode to their byte.
    func testDecodeRejectsUnknownIDs() throws {
        let t = SmolLM.tokenizer
        XCTAssertThrowsError(try t.decode([5, 49152])) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownTokenID(id: 49152, vocabularySize: 49152))
            XCTAssertTrue("\(error)".contains("49152"))
        }
        XCTAssertThrowsError(try t.decode([-1]))
        // The vocabulary has one-symbol tokens for 235 of the 256 bytes (it lacks controls 0x04 0x06 0x13 0x14
        // 0x16 0x1D and bytes 0xC0 0xC1 0xF1 0xF2 0xF5-0xFF): present ones decode to their byte, absent ones
        // are encoded as the unknown token, as transformers does.
        var present = 0
        for byte in 0..<256 {
            guard let id = t.tokenID(for: ByteLevelAlphabet.symbol(for: UInt8(byte))) else { continue }
            present += 1
            XCTAssertEqual(try t.decodeBytes([id]), [UInt8(byte)])
        }
        XCTAssertEqual(present, 235)
        let withControl = t.encode("a\u{4}b")
        XCTAssertEqual(withControl, [t.encode("a")[0], 0, t.encode("b")[0]])
    }

    /// Encoding speed on ~100 KB of mixed text, with a fresh (cold-cache) tokenizer and a warm second pass.
    func testEncodeSpeedOn100KB() throws {
        let lines = try utf8Lines("tokenizer/multilingual.txt")
        let prose = (try ReferencePrompt.loadAll()).map(\.text).joined(separator: "\n")
        var text = ""
        var k = 0
        while text.utf8.count < 100_000 {
            text += lines[k % lines.count] + " \(k) " + prose + "\n"
            k += 1
        }
        let t = try SmolLM.fixture.makeTokenizer()
        let start = Date()
        let ids = t.encode(text)
        let cold = Date().timeIntervalSince(start)
        let start2 = Date()
        let ids2 = t.encode(text)
        let warm = Date().timeIntervalSince(start2)
        XCTAssertEqual(ids, ids2)
        XCTAssertEqual(Array(try t.decode(ids).utf8), Array(text.utf8))
        print(String(format: "encode %d bytes -> %d tokens: cold %.1f ms (%.0f tokens/s), warm %.1f ms (%.0f tokens/s)",
                     text.utf8.count, ids.count, cold * 1000, Double(ids.count) / cold, warm * 1000, Double(ids.count) / warm))
        XCTAssertLessThan(cold, 2.0, "100 KB should encode well within 2 s")

        // Worst case for merging: ~100 KB of Chinese without spaces is one pre-tokenizer piece of 33k scalars.
        let chinese = String(repeating: "我爱自然语言处理今天天气很好", count: 2400)
        let start3 = Date()
        let chineseIDs = t.encode(chinese)
        let single = Date().timeIntervalSince(start3)
        XCTAssertEqual(Array(try t.decode(chineseIDs).utf8), Array(chinese.utf8))
        print(String(format: "encode %d bytes of unbroken Chinese (one piece) -> %d tokens: %.1f ms (%.0f tokens/s)",
                     chinese.utf8.count, chineseIDs.count, single * 1000, Double(chineseIDs.count) / single))
        XCTAssertLessThan(single, 2.0)

        // Few cache hits: ~100 KB of pseudo-random lowercase words (almost every piece new).
        var state: UInt64 = 42
        var words: [String] = []
        var size = 0
        while size < 100_000 {
            var word = " "
            state = state &* 6364136223846793005 &+ 1442695040888963407
            for _ in 0..<(3 + Int(state >> 61)) {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                word.unicodeScalars.append(Unicode.Scalar(UInt8(97 + (state >> 33) % 26)))
            }
            words.append(word)
            size += word.utf8.count
        }
        let randomText = words.joined()
        let start4 = Date()
        let randomIDs = t.encode(randomText)
        let uncached = Date().timeIntervalSince(start4)
        XCTAssertEqual(try t.decode(randomIDs), randomText)
        print(String(format: "encode %d bytes of random words -> %d tokens: %.1f ms (%.0f tokens/s)",
                     randomText.utf8.count, randomIDs.count, uncached * 1000, Double(randomIDs.count) / uncached))
        XCTAssertLessThan(uncached, 2.0)
    }
}
