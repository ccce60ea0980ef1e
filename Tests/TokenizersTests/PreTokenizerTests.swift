// The hand-written pre-tokenizer scanners against ICU's regular-expression engine (NSRegularExpression)
// running the original expressions, on the multilingual fixture and on random strings.
import Foundation
import TestSupport
import Tokenizers
import XCTest

final class PreTokenizerTests: XCTestCase {
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Pattern = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// All matches of `pattern` in `text` as strings (ICU semantics: leftmost, first alternative wins).
    static func regexPieces(_ pattern: String, _ text: String) -> [String] {
        let regex = try! NSRegularExpression(pattern: pattern)
        let ns = text as NSString
        return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { ns.substring(with: $0.range) }
    }

    /// SmolLM's rule via regexes: each \p{N} isolated, the GPT-2 expression on the text between.
    static func smollmRegexPieces(_ text: String) -> [String] {
        var pieces: [String] = []
        var gap = String.UnicodeScalarView()
        func flush() {
            if !gap.isEmpty { pieces += regexPieces(gpt2Pattern, String(gap)); gap = String.UnicodeScalarView() }
        }
        for scalar in text.unicodeScalars {
            if regexPieces(#"\p{N}"#, String(scalar)).isEmpty { gap.append(scalar) } else { flush(); pieces.append(String(scalar)) }
        }
        flush()
        return pieces
    }

    func testHandWorkedExamples() {
        XCTAssertEqual(PreTokenizer.gpt2.split("Hello world  foo\n\nbar's 123"),
                       ["Hello", " world", " ", " foo", "\n", "\n", "bar", "'s", " 123"])
        XCTAssertEqual(PreTokenizer.smollm.split("abc123 x4"), ["abc", "1", "2", "3", " x", "4"])
        XCTAssertEqual(PreTokenizer.llama3.split("Hello, world!\n\n  It's 12345 (ok)"),
                       ["Hello", ",", " world", "!\n\n", " ", " It", "'s", " ", "123", "45", " (", "ok", ")"])
        XCTAssertEqual(PreTokenizer.qwen2.split("It'S 12345"), ["It", "'S", " ", "1", "2", "3", "4", "5"])
        XCTAssertEqual(PreTokenizer.gpt2.split("It'S"), ["It", "'", "S"])   // GPT-2's contractions are case-sensitive
        XCTAssertEqual(PreTokenizer.bpeDefault.split("a+b==c... 1234"), ["a", "+", "b", "==", "c", "...", " ", "123", "4"])
        XCTAssertEqual(PreTokenizer.gpt2.split(""), [])
    }

    func testGGUFNames() throws {
        XCTAssertEqual(try PreTokenizer(ggufName: "smollm"), .smollm)
        XCTAssertEqual(try PreTokenizer(ggufName: "llama-bpe"), .llama3)
        XCTAssertEqual(try PreTokenizer(ggufName: "qwen2"), .qwen2)
        XCTAssertEqual(try PreTokenizer(ggufName: "gpt-2"), .gpt2)
        XCTAssertEqual(try PreTokenizer(ggufName: nil), .bpeDefault)
        XCTAssertThrowsError(try PreTokenizer(ggufName: "klingon")) { error in
            XCTAssertEqual(error as? TokenizerError, .unknownPreTokenizer(source: "tokenizer.ggml.pre", name: "klingon"))
            XCTAssertTrue("\(error)".contains("smollm"))
        }
    }

    /// Every line of the multilingual fixture splits exactly as the regex engine splits it, for each rule.
    func testMatchesRegexEngineOnMultilingualText() throws {
        for line in try utf8Lines("tokenizer/multilingual.txt") {
            XCTAssertEqual(PreTokenizer.gpt2.split(line), Self.regexPieces(Self.gpt2Pattern, line), line)
            XCTAssertEqual(PreTokenizer.llama3.split(line), Self.regexPieces(Self.llama3Pattern, line), line)
            XCTAssertEqual(PreTokenizer.qwen2.split(line), Self.regexPieces(Self.qwen2Pattern, line), line)
            XCTAssertEqual(PreTokenizer.smollm.split(line), Self.smollmRegexPieces(line), line)
        }
    }

    /// Random strings over an alphabet rich in edge cases (apostrophes, CR/LF runs, mixed spaces, marks).
    func testMatchesRegexEngineOnRandomStrings() {
        let alphabet: [String] = ["a", "Z", "é", "ß", "中", "ж", "0", "7", "٣", "²", "½", " ", " ", "  ", "\t", "\n", "\r",
                                  "\u{A0}", "\u{3000}", "'", "'s", "'LL", "'re", ".", ",", "!", "(", "-", "$", "+",
                                  "\u{301}", "\u{94D}", "🤗", "👩\u{200D}💻", "\u{200B}", "_", "\"", "\u{2028}"]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(bound))
        }
        for _ in 0..<400 {
            let text = (0..<(1 + next(24))).map { _ in alphabet[next(alphabet.count)] }.joined()
            XCTAssertEqual(PreTokenizer.gpt2.split(text), Self.regexPieces(Self.gpt2Pattern, text), text.debugDescription)
            XCTAssertEqual(PreTokenizer.llama3.split(text), Self.regexPieces(Self.llama3Pattern, text), text.debugDescription)
            XCTAssertEqual(PreTokenizer.qwen2.split(text), Self.regexPieces(Self.qwen2Pattern, text), text.debugDescription)
            XCTAssertEqual(PreTokenizer.smollm.split(text), Self.smollmRegexPieces(text), text.debugDescription)
        }
    }
}
