// Incremental detokenisation for generation: a byte-level token can end in the middle of a multi-byte
// UTF-8 character (an emoji is often split over two or three tokens), so bytes are held back until the
// character they start is complete.

/// Turns ids into text one at a time, yielding only whole Unicode scalars.
public struct StreamingDecoder {
    /// The tokenizer whose byte table is used.
    public let tokenizer: BPETokenizer
    /// Whether control and unknown tokens are left out.
    public let skipSpecialTokens: Bool
    /// Bytes of a character still incomplete (at most 3).
    private var pending: [UInt8] = []

    /// A decoder with nothing pending.
    public init(tokenizer: BPETokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Whether bytes of an unfinished character are held back.
    public var hasPendingBytes: Bool { !pending.isEmpty }

    /// Adds one id; returns the text completed by it (possibly empty). Throws for an id outside the vocabulary.
    public mutating func append(_ id: Int) throws -> String {
        try tokenizer.appendBytes(of: id, to: &pending, skipSpecialTokens: skipSpecialTokens)
        let cut = Self.completePrefixLength(pending)
        guard cut > 0 else { return "" }
        let text = String(decoding: pending[..<cut], as: UTF8.self)
        pending.removeFirst(cut)
        return text
    }

    /// Ends the stream: returns whatever is held back, an unfinished character becoming U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the prefix of `bytes` that can be decoded now: all of it, unless it ends in a valid but
    /// unfinished UTF-8 sequence, which is held back. Invalid bytes are released (they decode to U+FFFD).
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        // The last lead byte within the final 4 bytes starts the only sequence that may be unfinished.
        var lead = n - 1
        while lead >= 0, lead > n - 4, bytes[lead] & 0xC0 == 0x80 { lead -= 1 }
        guard lead >= 0 else { return n }
        let b0 = bytes[lead]
        let length: Int
        var secondRange: ClosedRange<UInt8> = 0x80...0xBF
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; secondRange = 0xA0...0xBF
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; secondRange = 0x80...0x9F
        case 0xF0: length = 4; secondRange = 0x90...0xBF
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; secondRange = 0x80...0x8F
        default: return n   // ASCII, or a byte that can never start a sequence
        }
        let have = n - lead
        guard have < length else { return n }
        // Hold back only a prefix that can still become a valid character.
        if have >= 2, !secondRange.contains(bytes[lead + 1]) { return n }
        return lead
    }
}
