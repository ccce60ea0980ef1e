// Pre-tokenisation: splitting text into the pieces that BPE merges within. Each case is one of the
// regular expressions llama.cpp and Hugging Face tokenizers use, implemented as a hand-written scanner
// over Unicode scalars with general categories (\p{L} letters, \p{N} numbers, \p{P} punctuation,
// \s = White_Space). Where a case applies several expressions in turn, each one splits the pieces of
// the previous one, and text between matches stays a piece of its own.

/// The splitting rule applied before BPE, named as in GGUF's tokenizer.ggml.pre.
public enum PreTokenizer: String, CaseIterable, Sendable {
    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    case gpt2
    /// SmolLM / StarCoder: every \p{N} isolated, then the GPT-2 rule on the rest.
    case smollm
    /// Llama 3: `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`.
    case llama3
    /// Qwen 2: the Llama 3 rule with single-digit numbers (`\p{N}` for `\p{N}{1,3}`).
    case qwen2
    /// llama.cpp's fallback for BPE vocabularies without a known name: punctuation runs
    /// `[\p{P}$+<=>^~|]+`, then the GPT-2 rule, then `\p{N}+`, then `[0-9]{3}`.
    case bpeDefault = "default"

    /// GGUF tokenizer.ggml.pre names accepted, with the rule each one selects (as llama.cpp maps them).
    static let namesByRule: [(PreTokenizer, [String])] = [
        (.gpt2, ["gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "granite-docling", "exaone4",
                 "roberta-bpe", "jina-v1-en", "jina-v2-code", "jina-es", "jina-de", "jina-v2-es", "jina-v2-de",
                 "gigachat", "a.x-4.0", "mellum"]),
        (.smollm, ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"]),
        (.llama3, ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                   "dbrx", "smaug-bpe"]),
        (.qwen2, ["qwen2", "deepseek-r1-qwen", "kormo", "stablelm2", "megrez", "hunyuan"]),
        (.bpeDefault, ["default"]),
    ]

    /// Every accepted name.
    public static var knownNames: [String] { namesByRule.flatMap { $0.1 } }

    /// The rule for a GGUF tokenizer.ggml.pre value; a missing name selects `.bpeDefault` as llama.cpp does.
    public init(ggufName name: String?, source: String = "tokenizer.ggml.pre") throws {
        guard let name = name else { self = .bpeDefault; return }
        for (rule, names) in Self.namesByRule where names.contains(name) { self = rule; return }
        throw TokenizerError.unknownPreTokenizer(source: source, name: name)
    }

    /// Whether BPE should emit a piece that is itself a vocabulary entry without merging (llama.cpp and
    /// Hugging Face's `ignore_merges` for Llama 3).
    public var ignoresMergesForKnownWords: Bool { self == .llama3 }

    /// The pieces of `text`, in order; joined they give `text` back.
    public func split(_ text: String) -> [String] {
        let scalarText = ScalarText(text.unicodeScalars)
        var pieces: [Range<Int>] = []
        split(scalarText, 0..<scalarText.count, into: &pieces)
        return pieces.map { range in
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalarText.scalars[range])
            return String(view)
        }
    }

    /// Appends the pieces of `range` (indices into `text`) to `pieces`, in order, covering the range.
    func split(_ text: ScalarText, _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        switch self {
        case .gpt2: splitMatches(text, range, into: &pieces, next: gpt2Match)
        case .llama3: splitMatches(text, range, into: &pieces) { llama3Match($0, $1, $2, maxDigits: 3) }
        case .qwen2: splitMatches(text, range, into: &pieces) { llama3Match($0, $1, $2, maxDigits: 1) }
        case .smollm:
            // Stage 1 isolates each number scalar; the text between goes through the GPT-2 rule.
            isolateRuns(text, range, where: { $0 & ScalarClass.number != 0 }, maxRun: 1,
                        match: { pieces.append($0) },
                        gap: { splitMatches(text, $0, into: &pieces, next: gpt2Match) })
        case .bpeDefault:
            isolateRuns(text, range, where: { $0 & ScalarClass.defaultPunctuation != 0 }, maxRun: .max,
                        match: { pieces.append($0) },
                        gap: { gap in
                            var words: [Range<Int>] = []
                            splitMatches(text, gap, into: &words, next: gpt2Match)
                            for word in words { splitDefaultNumbers(text, word, into: &pieces) }
                        })
        }
    }

    /// `\p{N}+` runs isolated, then `[0-9]{3}` within every piece.
    private func splitDefaultNumbers(_ text: ScalarText, _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        isolateRuns(text, range, where: { $0 & ScalarClass.number != 0 }, maxRun: .max,
                    match: { splitThreeDigits(text, $0, into: &pieces) },
                    gap: { splitThreeDigits(text, $0, into: &pieces) })
    }

    private func splitThreeDigits(_ text: ScalarText, _ range: Range<Int>, into pieces: inout [Range<Int>]) {
        var gapStart = range.lowerBound, i = range.lowerBound
        while i < range.upperBound {
            if i + 3 <= range.upperBound, text.isASCIIDigit(i), text.isASCIIDigit(i + 1), text.isASCIIDigit(i + 2) {
                if gapStart < i { pieces.append(gapStart..<i) }
                pieces.append(i..<(i + 3))
                i += 3; gapStart = i
            } else {
                i += 1
            }
        }
        if gapStart < range.upperBound { pieces.append(gapStart..<range.upperBound) }
    }
}

/// Calls `match` for each run of scalars whose class satisfies `isMember` (cut every `maxRun` scalars) and
/// `gap` for the text between runs, in text order.
private func isolateRuns(_ text: ScalarText, _ range: Range<Int>, where isMember: (UInt8) -> Bool, maxRun: Int,
                         match: (Range<Int>) -> Void, gap: (Range<Int>) -> Void) {
    var gapStart = range.lowerBound, i = range.lowerBound
    while i < range.upperBound {
        guard isMember(text.classes[i]) else { i += 1; continue }
        if gapStart < i { gap(gapStart..<i) }
        let start = i
        while i < range.upperBound, i - start < maxRun, isMember(text.classes[i]) { i += 1 }
        match(start..<i)
        gapStart = i
    }
    if gapStart < range.upperBound { gap(gapStart..<range.upperBound) }
}

/// Splits a range by an expression that matches at every position (each alternative list ends in a
/// catch-all), given as `next(text, start, end) -> match end`.
private func splitMatches(_ text: ScalarText, _ range: Range<Int>, into pieces: inout [Range<Int>],
                          next: (ScalarText, Int, Int) -> Int) {
    var i = range.lowerBound
    while i < range.upperBound {
        let end = next(text, i, range.upperBound)
        pieces.append(i..<end)
        i = end
    }
}

/// One match of the GPT-2 expression starting at `i` (the piece ends at `end`); returns the match end.
private func gpt2Match(_ t: ScalarText, _ i: Int, _ end: Int) -> Int {
    if let e = contractionEnd(t, i, end, caseInsensitive: false) { return e }
    let c = t.classes
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional leading space, then a run of one class.
    let spaceLed = c[i] & ScalarClass.space != 0 && i + 1 < end
    func run(_ kind: UInt8) -> Int? {
        var j = i
        if c[j] & kind == 0 {
            guard spaceLed, c[i + 1] & kind != 0 else { return nil }
            j = i + 1
        }
        while j < end, c[j] & kind != 0 { j += 1 }
        return j
    }
    if let e = run(ScalarClass.letter) ?? run(ScalarClass.number) ?? run(ScalarClass.other) { return e }
    return whitespaceEnd(t, i, end)
}

/// One match of the Llama 3 / Qwen 2 expression starting at `i`.
private func llama3Match(_ t: ScalarText, _ i: Int, _ end: Int, maxDigits: Int) -> Int {
    if let e = contractionEnd(t, i, end, caseInsensitive: true) { return e }
    let c = t.classes
    // `[^\r\n\p{L}\p{N}]?\p{L}+`
    var j = i
    if c[i] & (ScalarClass.newline | ScalarClass.letter | ScalarClass.number) == 0,
       i + 1 < end, c[i + 1] & ScalarClass.letter != 0 { j = i + 1 }
    if c[j] & ScalarClass.letter != 0 {
        while j < end, c[j] & ScalarClass.letter != 0 { j += 1 }
        return j
    }
    // `\p{N}{1,maxDigits}`
    if c[i] & ScalarClass.number != 0 {
        j = i
        while j < end, j - i < maxDigits, c[j] & ScalarClass.number != 0 { j += 1 }
        return j
    }
    // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
    j = (c[i] & ScalarClass.space != 0 && i + 1 < end && c[i + 1] & ScalarClass.other != 0) ? i + 1 : i
    if c[j] & ScalarClass.other != 0 {
        while j < end, c[j] & ScalarClass.other != 0 { j += 1 }
        while j < end, c[j] & ScalarClass.newline != 0 { j += 1 }
        return j
    }
    // `\s*[\r\n]+`: the whitespace run up to and including its last line break.
    if c[i] & ScalarClass.whitespace != 0 {
        var runEnd = i
        while runEnd < end, c[runEnd] & ScalarClass.whitespace != 0 { runEnd += 1 }
        var k = runEnd - 1
        while k >= i, c[k] & ScalarClass.newline == 0 { k -= 1 }
        if k >= i { return k + 1 }
    }
    return whitespaceEnd(t, i, end)
}

/// `\s+(?!\S)|\s+` at `i`: a whitespace run, leaving its last scalar to the next piece when a
/// non-space follows (so " word" keeps its space); any other scalar alone as a last resort.
private func whitespaceEnd(_ t: ScalarText, _ i: Int, _ end: Int) -> Int {
    let c = t.classes
    guard c[i] & ScalarClass.whitespace != 0 else { return i + 1 }
    var j = i
    while j < end, c[j] & ScalarClass.whitespace != 0 { j += 1 }
    if j < end && j - i > 1 { return j - 1 }
    return j
}

/// `'s|'t|'re|'ve|'m|'ll|'d` at `i` (ASCII apostrophe only).
private func contractionEnd(_ t: ScalarText, _ i: Int, _ end: Int, caseInsensitive: Bool) -> Int? {
    guard t.scalars[i] == "'", i + 1 < end else { return nil }
    func letter(_ k: Int) -> UInt32 {
        guard k < end else { return 0 }
        let v = t.scalars[k].value
        return caseInsensitive && (65...90).contains(v) ? v + 32 : v
    }
    switch letter(i + 1) {
    case 0x73, 0x74, 0x6D, 0x64: return i + 2                      // s t m d
    case 0x72, 0x76: return letter(i + 2) == 0x65 ? i + 3 : nil     // re ve
    case 0x6C: return letter(i + 2) == 0x6C ? i + 3 : nil           // ll
    default: return nil
    }
}
