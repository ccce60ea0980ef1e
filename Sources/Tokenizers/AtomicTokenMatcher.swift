// Finds special and added tokens (`<|im_start|>`, `<|endoftext|>`, ...) in raw text before pre-tokenisation,
// so that they become one id each instead of being split into characters.

/// A token matched as a whole in raw text; mirrors Hugging Face tokenizer.json "added_tokens".
public struct AddedToken: Equatable, Sendable {
    /// Its id in the vocabulary.
    public var id: Int
    /// The literal text matched in the input (and produced when decoding).
    public var content: String
    /// Special tokens (control tokens) are matched only when special tokens are parsed.
    public var isSpecial: Bool
    /// Whether whitespace before the token is absorbed into it (tokenizer.json "lstrip").
    public var stripsLeft: Bool
    /// Whether whitespace after the token is absorbed into it (tokenizer.json "rstrip").
    public var stripsRight: Bool

    /// An added token; by default special and without whitespace stripping.
    public init(id: Int, content: String, isSpecial: Bool = true, stripsLeft: Bool = false, stripsRight: Bool = false) {
        self.id = id; self.content = content; self.isSpecial = isSpecial
        self.stripsLeft = stripsLeft; self.stripsRight = stripsRight
    }
}

/// A stretch of input: plain text (scalar indices) or one matched token.
enum InputSegment: Equatable {
    case text(Range<Int>)
    case token(Int)
}

/// Leftmost-longest matcher over scalars for a set of atomic tokens.
struct AtomicTokenMatcher {
    private struct Candidate {
        var scalars: [Unicode.Scalar]
        var token: AddedToken
    }
    /// Candidates by first scalar, longest first.
    private var byFirstScalar: [UInt32: [Candidate]] = [:]
    /// Quick reject: whether any candidate starts with a scalar whose low 16 bits index this table: [65536].
    private var mayStart = [Bool](repeating: false, count: 0x10000)

    var isEmpty: Bool { byFirstScalar.isEmpty }

    init(_ tokens: [AddedToken]) {
        for token in tokens where !token.content.isEmpty {
            let scalars = Array(token.content.unicodeScalars)
            byFirstScalar[scalars[0].value, default: []].append(Candidate(scalars: scalars, token: token))
            mayStart[Int(scalars[0].value & 0xFFFF)] = true
        }
        for key in byFirstScalar.keys { byFirstScalar[key]!.sort { $0.scalars.count > $1.scalars.count } }
    }

    /// Splits `text` into plain stretches and matched tokens, in order. Without `parseSpecial`, special
    /// tokens are left in the plain text; non-special added tokens are always matched.
    func segments(of text: ScalarText, parseSpecial: Bool) -> [InputSegment] {
        let n = text.count
        if isEmpty { return n > 0 ? [.text(0..<n)] : [] }
        var result: [InputSegment] = []
        var textStart = 0, i = 0
        while i < n {
            let first = text.scalars[i].value
            guard mayStart[Int(first & 0xFFFF)], let match = longestMatch(text, at: i, parseSpecial: parseSpecial) else {
                i += 1; continue
            }
            var before = i
            if match.token.stripsLeft {
                while before > textStart, text.classes[before - 1] & ScalarClass.whitespace != 0 { before -= 1 }
            }
            if textStart < before { result.append(.text(textStart..<before)) }
            result.append(.token(match.token.id))
            i += match.scalars.count
            if match.token.stripsRight {
                while i < n, text.classes[i] & ScalarClass.whitespace != 0 { i += 1 }
            }
            textStart = i
        }
        if textStart < n { result.append(.text(textStart..<n)) }
        return result
    }

    private func longestMatch(_ text: ScalarText, at i: Int, parseSpecial: Bool) -> Candidate? {
        guard let candidates = byFirstScalar[text.scalars[i].value] else { return nil }
        for candidate in candidates where parseSpecial || !candidate.token.isSpecial {
            let m = candidate.scalars.count
            guard i + m <= text.count else { continue }
            var k = 1
            while k < m, text.scalars[i + k] == candidate.scalars[k] { k += 1 }
            if k == m { return candidate }
        }
        return nil
    }
}
