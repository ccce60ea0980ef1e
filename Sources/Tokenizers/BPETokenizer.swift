// Byte-level BPE (GPT-2, Llama 3, Qwen 2, SmolLM): text → atomic tokens and plain stretches → pre-tokenizer
// pieces → UTF-8 bytes as byte-level symbols → merges in rank order → ids. Built from plain data named after
// GGUF's tokenizer.ggml.* keys; HuggingFaceTokenizer.swift builds it from tokenizer.json.
import Foundation

/// A byte-level BPE tokenizer. Immutable apart from an internal word cache; safe to share across threads.
public final class BPETokenizer: Tokenizer, @unchecked Sendable {
    /// Vocabulary entries as stored (byte-level symbols for normal tokens), indexed by id.
    public let tokens: [String]
    /// Kind of every entry: [vocabularySize].
    public let tokenTypes: [TokenType]
    /// The splitting rule applied before merging.
    public let preTokenizer: PreTokenizer
    /// BOS / EOS / unknown / padding ids.
    public let specialTokenIDs: SpecialTokenIDs
    /// Whether `encode(_, addSpecialTokens: true, ...)` starts with BOS (GGUF tokenizer.ggml.add_bos_token).
    public let addsBOS: Bool
    /// Whether `encode(_, addSpecialTokens: true, ...)` ends with EOS (GGUF tokenizer.ggml.add_eos_token).
    public let addsEOS: Bool
    /// Whether a piece that is itself a vocabulary entry is emitted without merging (Llama 3's ignore_merges).
    public let ignoresMerges: Bool
    /// Whether input is put in Unicode NFC first (tokenizer.json "normalizer": NFC, as Qwen 2 has).
    public let normalizesToNFC: Bool
    /// Tokens matched as a whole in raw text: control / unknown (special) and user-defined ones.
    public let addedTokens: [AddedToken]

    public var vocabularySize: Int { tokens.count }

    let idForToken: [String: Int]
    /// Id of each byte's one-symbol token (or the unknown id): [256].
    let byteTokenIDs: [Int32]
    /// (left id << 32 | right id) → (rank << 32 | merged id).
    let mergeTable: [UInt64: UInt64]
    /// Decoded bytes of every token, concatenated; token i is decodedBytes[decodedOffsets[i]..<decodedOffsets[i+1]].
    let decodedBytes: [UInt8]
    let decodedOffsets: [Int]
    let atomicMatcher: AtomicTokenMatcher
    private let cache = WordCache()

    /// A tokenizer from GGUF-style data. `merges` are "left right" strings, rank = index; `tokenTypes` uses
    /// GGUF numbering (nil: all normal). Control, unknown and user-defined tokens become atomic tokens; entries
    /// of `addedTokens` (tokenizer.json) add to or override them. `ignoreMerges` nil follows the pre-tokenizer.
    public convenience init(vocabulary tokens: [String], merges: [String], tokenTypes: [Int32]? = nil,
                            addedTokens: [AddedToken] = [], preTokenizer: PreTokenizer,
                            specialTokenIDs: SpecialTokenIDs, addBOS: Bool, addEOS: Bool = false,
                            ignoreMerges: Bool? = nil, normalizeToNFC: Bool = false, source: String = "tokenizer") throws {
        var pairs: [(String, String)] = []
        pairs.reserveCapacity(merges.count)
        for (index, merge) in merges.enumerated() {
            let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.malformedMerge(source: source, index: index, merge: merge)
            }
            pairs.append((String(parts[0]), String(parts[1])))
        }
        try self.init(vocabulary: tokens, mergePairs: pairs, tokenTypes: tokenTypes, addedTokens: addedTokens,
                      preTokenizer: preTokenizer, specialTokenIDs: specialTokenIDs, addBOS: addBOS, addEOS: addEOS,
                      ignoreMerges: ignoreMerges, normalizeToNFC: normalizeToNFC, source: source)
    }

    /// As the string-merges initialiser, with merges as (left, right) pairs (tokenizer.json's newer format,
    /// which allows spaces inside tokens).
    public init(vocabulary tokens: [String], mergePairs: [(String, String)], tokenTypes: [Int32]? = nil,
                addedTokens: [AddedToken] = [], preTokenizer: PreTokenizer, specialTokenIDs: SpecialTokenIDs,
                addBOS: Bool, addEOS: Bool = false, ignoreMerges: Bool? = nil, normalizeToNFC: Bool = false,
                source: String = "tokenizer") throws {
        guard !tokens.isEmpty else { throw TokenizerError.emptyVocabulary(source: source) }
        let n = tokens.count
        var types = [TokenType](repeating: .normal, count: n)
        if let raw = tokenTypes {
            guard raw.count == n else {
                throw TokenizerError.tokenTypeCountMismatch(source: source, tokens: n, types: raw.count)
            }
            for (id, value) in raw.enumerated() {
                guard let type = TokenType(rawValue: value) else {
                    throw TokenizerError.invalidTokenType(source: source, id: id, type: value)
                }
                types[id] = type
            }
        }
        for (field, id) in [("bos_token_id", specialTokenIDs.bos), ("eos_token_id", specialTokenIDs.eos),
                            ("unknown_token_id", specialTokenIDs.unknown), ("padding_token_id", specialTokenIDs.padding)] {
            if let id = id, !(0..<n).contains(id) {
                throw TokenizerError.specialTokenOutOfRange(source: source, field: field, id: id, vocabularySize: n)
            }
        }

        // Atomic tokens: typed ones from the vocabulary, then explicit added tokens (which win per id).
        var atomicByID: [Int: AddedToken] = [:]
        for id in 0..<n where types[id].isAtomic {
            atomicByID[id] = AddedToken(id: id, content: tokens[id], isSpecial: types[id].isSpecial)
        }
        for added in addedTokens {
            guard (0..<n).contains(added.id) else {
                throw TokenizerError.specialTokenOutOfRange(source: source, field: "added token \"\(added.content)\"",
                                                            id: added.id, vocabularySize: n)
            }
            atomicByID[added.id] = added
            if !types[added.id].isAtomic { types[added.id] = added.isSpecial ? .control : .userDefined }
        }
        let atomic = atomicByID.keys.sorted().map { atomicByID[$0]! }

        // Token lookup; with duplicate strings the first id wins.
        var lookup: [String: Int] = [:]
        lookup.reserveCapacity(n)
        for (id, token) in tokens.enumerated() where lookup[token] == nil { lookup[token] = id }

        var byteIDs = [Int32](repeating: -1, count: 256)
        for byte in 0..<256 {
            let symbol = ByteLevelAlphabet.symbol(for: UInt8(byte))
            if let id = lookup[symbol] {
                byteIDs[byte] = Int32(id)
            } else if let unknown = specialTokenIDs.unknown {
                byteIDs[byte] = Int32(unknown)
            } else {
                throw TokenizerError.missingByteSymbol(source: source, byte: UInt8(byte), symbol: symbol)
            }
        }

        var table: [UInt64: UInt64] = [:]
        table.reserveCapacity(mergePairs.count)
        for (rank, (left, right)) in mergePairs.enumerated() {
            let merge = "\(left) \(right)"
            guard let l = lookup[left] else {
                throw TokenizerError.mergeTokenMissing(source: source, index: rank, merge: merge, token: left)
            }
            guard let r = lookup[right] else {
                throw TokenizerError.mergeTokenMissing(source: source, index: rank, merge: merge, token: right)
            }
            guard let m = lookup[left + right] else {
                throw TokenizerError.mergeTokenMissing(source: source, index: rank, merge: merge, token: left + right)
            }
            let key = UInt64(l) << 32 | UInt64(r)
            if table[key] == nil { table[key] = UInt64(rank) << 32 | UInt64(m) }   // a repeated pair keeps its best rank
        }

        // Decoded bytes: literal text for control / user-defined / unknown / unused tokens, byte-level otherwise.
        var flat: [UInt8] = []
        var offsets = [0]
        offsets.reserveCapacity(n + 1)
        for id in 0..<n {
            if let added = atomicByID[id] {
                flat.append(contentsOf: added.content.utf8)
            } else if types[id].decodesAsRawText {
                flat.append(contentsOf: tokens[id].utf8)
            } else {
                flat.append(contentsOf: ByteLevelAlphabet.decode(tokens[id]))
            }
            offsets.append(flat.count)
        }

        self.tokens = tokens
        self.tokenTypes = types
        self.preTokenizer = preTokenizer
        self.specialTokenIDs = specialTokenIDs
        self.addsBOS = addBOS
        self.addsEOS = addEOS
        self.ignoresMerges = ignoreMerges ?? preTokenizer.ignoresMergesForKnownWords
        self.normalizesToNFC = normalizeToNFC
        self.addedTokens = atomic
        self.idForToken = lookup
        self.byteTokenIDs = byteIDs
        self.mergeTable = table
        self.decodedBytes = flat
        self.decodedOffsets = offsets
        self.atomicMatcher = AtomicTokenMatcher(atomic)
    }

    public func tokenID(for token: String) -> Int? { idForToken[token] }

    public func token(for id: Int) -> String? { (0..<tokens.count).contains(id) ? tokens[id] : nil }

    /// Ids for `text`: atomic tokens first, then pre-tokenizer pieces merged by rank.
    public func encode(_ text: String, addSpecialTokens: Bool, parseSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        ids.reserveCapacity(text.utf8.count / 3 + 2)
        if addSpecialTokens, addsBOS, let bos = specialTokenIDs.bos { ids.append(bos) }
        let input = normalizesToNFC ? text.precomposedStringWithCanonicalMapping : text
        let scalarText = ScalarText(input.unicodeScalars)
        var pieces: [Range<Int>] = []
        var scratch = MergeScratch()
        for segment in atomicMatcher.segments(of: scalarText, parseSpecial: parseSpecialTokens) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                pieces.removeAll(keepingCapacity: true)
                preTokenizer.split(scalarText, range, into: &pieces)
                for piece in pieces { encodePiece(scalarText.scalars[piece], into: &ids, scratch: &scratch) }
            }
        }
        if addSpecialTokens, addsEOS, let eos = specialTokenIDs.eos { ids.append(eos) }
        return ids
    }

    /// The bytes `ids` stand for; `skipSpecialTokens` leaves out control and unknown tokens.
    public func decodeBytes(_ ids: [Int], skipSpecialTokens: Bool = false) throws -> [UInt8] {
        var out: [UInt8] = []
        for id in ids { try appendBytes(of: id, to: &out, skipSpecialTokens: skipSpecialTokens) }
        return out
    }

    /// Text for `ids`; bytes that are not valid UTF-8 (a sequence cut at the end) become U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool) throws -> String {
        String(decoding: try decodeBytes(ids, skipSpecialTokens: skipSpecialTokens), as: UTF8.self)
    }

    /// Appends the bytes of one token to `out`.
    func appendBytes(of id: Int, to out: inout [UInt8], skipSpecialTokens: Bool) throws {
        guard (0..<tokens.count).contains(id) else {
            throw TokenizerError.unknownTokenID(id: id, vocabularySize: tokens.count)
        }
        if skipSpecialTokens && tokenTypes[id].isSpecial { return }
        out.append(contentsOf: decodedBytes[decodedOffsets[id]..<decodedOffsets[id + 1]])
    }

    // MARK: - Merging one piece

    private func encodePiece(_ scalars: ArraySlice<Unicode.Scalar>, into ids: inout [Int], scratch: inout MergeScratch) {
        scratch.bytes.removeAll(keepingCapacity: true)
        for scalar in scalars { UTF8.encode(scalar) { scratch.bytes.append($0) } }
        let key = String(decoding: scratch.bytes, as: UTF8.self)
        if let cached = cache.lookup(key) { ids.append(contentsOf: cached); return }

        let start = ids.count
        if ignoresMerges, let whole = idForToken[ByteLevelAlphabet.encode(scratch.bytes)] {
            ids.append(whole)
        } else {
            merge(&scratch)
            var i: Int32 = 0
            while i >= 0 { ids.append(Int(scratch.ids[Int(i)])); i = scratch.next[Int(i)] }
        }
        if scalars.count <= WordCache.maxWordScalars { cache.store(key, Array(ids[start...])) }
    }

    /// Applies merges to scratch.bytes' symbols, lowest rank first and leftmost first among equal ranks.
    /// Symbols form a linked list (`next`/`prev`); a binary heap holds candidate pairs, and stale entries
    /// (a side already merged away) are skipped when popped. O(n log n) in the piece length.
    private func merge(_ s: inout MergeScratch) {
        let n = s.bytes.count
        precondition(n > 0, "pre-tokenizer pieces are never empty")
        s.ids.removeAll(keepingCapacity: true)
        s.prev.removeAll(keepingCapacity: true)
        s.next.removeAll(keepingCapacity: true)
        s.heap.removeAll(keepingCapacity: true)
        for (k, b) in s.bytes.enumerated() {
            s.ids.append(byteTokenIDs[Int(b)])
            s.prev.append(Int32(k - 1))
            s.next.append(k + 1 < n ? Int32(k + 1) : -1)
        }
        for k in 0..<(n - 1) { pushPair(&s, left: Int32(k)) }
        while let entry = s.popMin() {
            let l = Int(entry.left)
            let r = Int(s.next[l])
            // Stale: the left symbol was absorbed, or either side changed since the entry was pushed.
            guard s.ids[l] == entry.leftID, r >= 0, s.ids[r] == entry.rightID else { continue }
            s.ids[l] = entry.mergedID
            s.ids[r] = -1
            let after = s.next[r]
            s.next[l] = after
            if after >= 0 { s.prev[Int(after)] = Int32(l) }
            if s.prev[l] >= 0 { pushPair(&s, left: s.prev[l]) }
            if after >= 0 { pushPair(&s, left: Int32(l)) }
        }
    }

    private func pushPair(_ s: inout MergeScratch, left: Int32) {
        let right = s.next[Int(left)]
        guard right >= 0 else { return }
        let a = s.ids[Int(left)], b = s.ids[Int(right)]
        guard let packed = mergeTable[UInt64(UInt32(a)) << 32 | UInt64(UInt32(b))] else { return }
        s.push(PairEntry(rank: UInt32(packed >> 32), left: left, leftID: a, rightID: b,
                         mergedID: Int32(truncatingIfNeeded: packed & 0xFFFF_FFFF)))
    }
}

/// A candidate merge: ordered by rank, then by position.
struct PairEntry {
    var rank: UInt32
    var left: Int32
    var leftID: Int32
    var rightID: Int32
    var mergedID: Int32

    @inline(__always)
    func precedes(_ other: PairEntry) -> Bool { rank != other.rank ? rank < other.rank : left < other.left }
}

/// Buffers reused across the pieces of one encode call.
struct MergeScratch {
    var bytes: [UInt8] = []
    var ids: [Int32] = []
    var prev: [Int32] = []
    var next: [Int32] = []
    var heap: [PairEntry] = []

    mutating func push(_ e: PairEntry) {
        heap.append(e)
        var k = heap.count - 1
        while k > 0 {
            let parent = (k - 1) / 2
            guard heap[k].precedes(heap[parent]) else { break }
            heap.swapAt(k, parent)
            k = parent
        }
    }

    mutating func popMin() -> PairEntry? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var k = 0
        let n = heap.count
        while true {
            let a = 2 * k + 1, b = a + 1
            var best = k
            if a < n, heap[a].precedes(heap[best]) { best = a }
            if b < n, heap[b].precedes(heap[best]) { best = b }
            if best == k { break }
            heap.swapAt(k, best)
            k = best
        }
        return top
    }
}

/// Piece text → ids, shared by all encode calls of one tokenizer (bounded; cleared when full).
final class WordCache: @unchecked Sendable {
    static let maxWordScalars = 64
    private static let capacity = 1 << 17
    private var entries: [String: [Int]] = [:]
    private let lock = NSLock()

    func lookup(_ key: String) -> [Int]? {
        lock.lock(); defer { lock.unlock() }
        return entries[key]
    }

    func store(_ key: String, _ ids: [Int]) {
        lock.lock(); defer { lock.unlock() }
        if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
        entries[key] = ids
    }
}
