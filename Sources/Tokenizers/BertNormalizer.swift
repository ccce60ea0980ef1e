// BERT's text normalisation and pre-tokenisation, as Hugging Face `tokenizers` defines them (BertNormalizer,
// BertPreTokenizer), on Unicode scalars:
//   clean text      drop U+0000, U+FFFD and "other" scalars (Cc, Cf, Cs, Co, Cn; \t \n \r are not controls);
//                   every White_Space scalar (and \t \n \r) becomes U+0020
//   Chinese chars   a space either side of each CJK ideograph, so each becomes its own word
//   strip accents   NFD, then drop non-spacing marks (Mn); on by default when lowercasing
//   lowercase       each scalar's full lowercase mapping, without context (as Rust's char::to_lowercase)
// The steps run in this order (accents are stripped before lowercasing, like the reference).
// Pre-tokenisation splits on whitespace (dropped) and isolates each punctuation scalar: ASCII punctuation
// (which includes $ + < = > ^ ` | ~) and the Unicode P* categories.
import Foundation

/// The BertNormalizer options of tokenizer.json.
public struct BertNormalizer: Equatable, Sendable {
    public var cleanText: Bool
    public var handleChineseChars: Bool
    /// nil: follow `lowercase` (tokenizer.json "strip_accents": null).
    public var stripAccents: Bool?
    public var lowercase: Bool

    /// all-MiniLM-L6-v2's (and bert-base-uncased's) settings by default.
    public init(cleanText: Bool = true, handleChineseChars: Bool = true, stripAccents: Bool? = nil, lowercase: Bool = true) {
        self.cleanText = cleanText; self.handleChineseChars = handleChineseChars
        self.stripAccents = stripAccents; self.lowercase = lowercase
    }

    /// The normalised scalars of `scalars`.
    public func normalize<S: Sequence>(_ scalars: S) -> [Unicode.Scalar] where S.Element == Unicode.Scalar {
        var out: [Unicode.Scalar] = []
        for s in scalars {
            if cleanText {
                if s.value == 0 || s.value == 0xFFFD || Self.isControl(s) { continue }
                if Self.isWhitespace(s) { out.append(" "); continue }
            }
            if handleChineseChars && Self.isChineseCharacter(s) {
                out.append(" "); out.append(s); out.append(" ")
            } else {
                out.append(s)
            }
        }
        if stripAccents ?? lowercase {
            // NFD of the whole text (canonical reordering needs neighbours), then drop Mn.
            var text = String.UnicodeScalarView()
            text.append(contentsOf: out)
            out = String(text).decomposedStringWithCanonicalMapping.unicodeScalars.filter { $0.properties.generalCategory != .nonspacingMark }
        }
        if lowercase {
            var lowered: [Unicode.Scalar] = []
            lowered.reserveCapacity(out.count)
            for s in out {
                if s.isASCII { lowered.append(s.value >= 65 && s.value <= 90 ? Unicode.Scalar(s.value + 32)! : s); continue }
                lowered.append(contentsOf: s.properties.lowercaseMapping.unicodeScalars)
            }
            out = lowered
        }
        return out
    }

    /// \t, \n, \r and the White_Space property.
    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// General category C* except \t \n \r.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// The CJK Unified Ideographs blocks BERT spaces out (not Hiragana, Katakana or Hangul).
    static func isChineseCharacter(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
             0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }
}

/// BertPreTokenizer: words split at whitespace, each punctuation scalar a word of its own.
public enum BertPreTokenizer {
    /// Word ranges of `scalars` (whitespace removed).
    public static func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        var words: [Range<Int>] = []
        var start: Int? = nil
        for (i, s) in scalars.enumerated() {
            if BertNormalizer.isWhitespace(s) || s.properties.isWhitespace {
                if let b = start { words.append(b..<i); start = nil }
            } else if isPunctuation(s) {
                if let b = start { words.append(b..<i); start = nil }
                words.append(i..<(i + 1))
            } else if start == nil {
                start = i
            }
        }
        if let b = start { words.append(b..<scalars.count) }
        return words
    }

    /// ASCII punctuation (!"#$%&'()*+,-./:;<=>?@[\]^_`{|}~) or a Unicode P* category.
    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation, .initialPunctuation,
             .otherPunctuation, .openPunctuation: return true
        default: return false
        }
    }
}
