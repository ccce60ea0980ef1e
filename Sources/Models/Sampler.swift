// Next-token choice with Hugging Face generate()'s semantics and order: repetition penalty, then (when
// sampling) temperature, top-k, top-p, and a draw from the softmax; greedy decoding is the argmax after the
// penalty. Draws come from a seeded counter-based generator, so a seed reproduces a generation exactly.
import Foundation
import TensorCore

/// Settings for choosing tokens; the defaults are greedy decoding.
public struct SamplingParameters: Equatable, Sendable {
    /// Softmax temperature; 0 means greedy (argmax), no randomness.
    public var temperature: Float
    /// Keep only the k most likely tokens (ties at the k-th logit kept); 0 switches it off.
    public var topK: Int
    /// Keep the smallest set of most likely tokens whose probability reaches p; 1 switches it off.
    public var topP: Float
    /// CTRL-style penalty on tokens already present (prompt included): positive logits are divided by it,
    /// negative ones multiplied; 1 switches it off.
    public var repetitionPenalty: Float
    public var seed: UInt64
    /// Ids never chosen: their logits become −∞ before anything else (llama.cpp's --ignore-eos does this with the
    /// end-of-generation tokens, so a reply always runs to its token limit).
    public var suppressedTokenIDs: Set<Int32>

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, repetitionPenalty: Float = 1, seed: UInt64 = 0,
                suppressedTokenIDs: Set<Int32> = []) {
        self.temperature = temperature; self.topK = topK; self.topP = topP
        self.repetitionPenalty = repetitionPenalty; self.seed = seed; self.suppressedTokenIDs = suppressedTokenIDs
    }

    /// Throws for values outside their ranges, naming the setting.
    public func validate() throws {
        guard temperature.isFinite, temperature >= 0 else { throw ModelError.invalidArgument(name: "temperature", reason: "\(temperature) must be ≥ 0") }
        guard topK >= 0 else { throw ModelError.invalidArgument(name: "top-k", reason: "\(topK) must be ≥ 0 (0 = off)") }
        guard topP > 0, topP <= 1 else { throw ModelError.invalidArgument(name: "top-p", reason: "\(topP) must be in (0, 1]") }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
            throw ModelError.invalidArgument(name: "repetition-penalty", reason: "\(repetitionPenalty) must be > 0 (1 = off)")
        }
    }

    /// Whether tokens are drawn at random (temperature > 0) rather than taken greedily.
    public var isSampling: Bool { temperature > 0 }
}

/// Chooses tokens from logits; holds the random stream.
public struct Sampler {
    public let parameters: SamplingParameters
    public private(set) var rng: RandomGenerator
    /// Candidates examined before falling back to a full sort for top-p (the nucleus is nearly always smaller).
    static let nucleusCandidates = 256

    public init(_ parameters: SamplingParameters) throws {
        try parameters.validate()
        self.parameters = parameters
        rng = RandomGenerator(seed: parameters.seed)
    }

    /// The next token for logits [vocab], given every token of the sequence so far (for the penalty).
    public mutating func sample(logits: Tensor, history: [Int32]) -> Int32 {
        var scores = logits.array
        Self.suppress(parameters.suppressedTokenIDs, in: &scores)
        applyRepetitionPenalty(&scores, history: history)
        guard parameters.isSampling, scores.count > 1 else { return Int32(Self.argmax(scores)) }
        let t = parameters.temperature
        for i in scores.indices { scores[i] /= t }
        let n = scores.count, k = parameters.topK > 0 ? min(parameters.topK, n) : n
        let usesTopP = parameters.topP < 1
        // candidates: (id, score) best first, covering every token that can be drawn; z: the softmax partition
        // Σ exp(score − maxScore) over the tokens top-k leaves.
        var candidates: [(Int, Float)]
        let maxScore: Float
        var z = 0.0
        if k < n {
            candidates = Self.best(scores, count: k, keepTies: true)
            maxScore = candidates[0].1
            for c in candidates { z += Double(Foundation.exp(c.1 - maxScore)) }
        } else {
            maxScore = scores.max()!
            for s in scores { z += Double(Foundation.exp(s - maxScore)) }
            guard usesTopP else { return draw(scores.enumerated().map { ($0.offset, $0.element) }, maxScore: maxScore, total: z) }
            // The nucleus is a prefix of the ranking; a short prefix holding ≥ top-p of the mass contains it.
            candidates = Self.best(scores, count: Self.nucleusCandidates, keepTies: false)
            let mass = candidates.reduce(0.0) { $0 + Double(Foundation.exp($1.1 - maxScore)) }
            if mass < Double(parameters.topP) * z { candidates = Self.best(scores, count: n, keepTies: false) }
        }
        if usesTopP {
            // Hugging Face's TopPLogitsWarper: a token is removed when the tokens ranked above it already hold
            // ≥ top_p of the probability; the first token always stays.
            var above = 0.0, keep = 0
            while keep < candidates.count, above < Double(parameters.topP) * z {
                above += Double(Foundation.exp(candidates[keep].1 - maxScore)); keep += 1
            }
            candidates.removeLast(candidates.count - keep)
            z = above
        }
        return draw(candidates, maxScore: maxScore, total: z)
    }

    /// Sets the scores of `ids` to −∞ (ids outside the vocabulary are ignored), so no choice can take them.
    static func suppress(_ ids: Set<Int32>, in scores: inout [Float]) {
        for id in ids where scores.indices.contains(Int(id)) { scores[Int(id)] = -.infinity }
    }

    /// Draws one id with probability exp(score − maxScore) / total from (id, score) pairs.
    private mutating func draw(_ pairs: [(Int, Float)], maxScore: Float, total: Double) -> Int32 {
        let u = Double(rng.nextUInt64() >> 11) * (1.0 / 9_007_199_254_740_992.0) * total
        var acc = 0.0
        for (id, s) in pairs {
            acc += Double(Foundation.exp(s - maxScore))
            if u < acc { return Int32(id) }
        }
        // Rounding left u just above the sum: the last token with any probability.
        return Int32(pairs.last { Foundation.exp($0.1 - maxScore) > 0 }?.0 ?? pairs[0].0)
    }

    /// Hugging Face's RepetitionPenaltyLogitsProcessor over the distinct ids of `history`.
    func applyRepetitionPenalty(_ scores: inout [Float], history: [Int32]) {
        let penalty = parameters.repetitionPenalty
        guard penalty != 1 else { return }
        var seen = Set<Int32>()
        for id in history where id >= 0 && Int(id) < scores.count && seen.insert(id).inserted {
            let s = scores[Int(id)]
            scores[Int(id)] = s < 0 ? s * penalty : s / penalty
        }
    }

    /// Index of the largest score (the first one on ties, as torch.argmax).
    static func argmax(_ scores: [Float]) -> Int {
        var best = 0
        for i in 1..<scores.count where scores[i] > scores[best] { best = i }
        return best
    }

    /// The `count` highest (id, score) pairs, best first (ties broken by lower id); with `keepTies`, tokens tied with
    /// the last one are included too.
    static func best(_ scores: [Float], count: Int, keepTies: Bool) -> [(Int, Float)] {
        let k = max(1, min(count, scores.count))
        // Min-heap of the best k seen so far, by (score, −id).
        var heap: [(Int, Float)] = []
        heap.reserveCapacity(k)
        func worse(_ a: (Int, Float), _ b: (Int, Float)) -> Bool { a.1 < b.1 || (a.1 == b.1 && a.0 > b.0) }
        func siftDown(_ start: Int) {
            var i = start
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < heap.count && worse(heap[l], heap[m]) { m = l }
                if r < heap.count && worse(heap[r], heap[m]) { m = r }
                if m == i { return }
                heap.swapAt(i, m); i = m
            }
        }
        for (i, s) in scores.enumerated() {
            if heap.count < k {
                heap.append((i, s))
                var c = heap.count - 1
                while c > 0 { let p = (c - 1) / 2; if worse(heap[c], heap[p]) { heap.swapAt(c, p); c = p } else { break } }
            } else if worse(heap[0], (i, s)) {
                heap[0] = (i, s); siftDown(0)
            }
        }
        var out = heap.sorted { worse($1, $0) }
        if keepTies, let last = out.last {
            let chosen = Set(out.map(\.0))
            for (i, s) in scores.enumerated() where s == last.1 && !chosen.contains(i) { out.append((i, s)) }
        }
        return out
    }
}
