// Sampler: Hugging Face's repetition penalty, greedy argmax, and the distributions temperature, top-k and top-p
// leave (checked by drawing many samples), reproducibility and argument errors.
import XCTest
import TensorCore
import Models

final class SamplerTests: XCTestCase {
    /// Frequency of each id over `draws` samples.
    func frequencies(_ logits: [Float], _ parameters: SamplingParameters, draws: Int = 20_000) throws -> [Double] {
        var sampler = try Sampler(parameters)
        var counts = [Double](repeating: 0, count: logits.count)
        let t = Tensor(logits, shape: [logits.count])
        for _ in 0..<draws { counts[Int(sampler.sample(logits: t, history: []))] += 1 }
        return counts.map { $0 / Double(draws) }
    }

    func testGreedyIsArgmaxAfterRepetitionPenalty() throws {
        var greedy = try Sampler(SamplingParameters())
        let logits = Tensor([1.0, 3.0, 2.9, -1.0], shape: [4])
        XCTAssertEqual(greedy.sample(logits: logits, history: []), 1)
        // Penalty 2: token 1's positive logit 3 → 1.5 (below 2.9); repeated ids count once.
        var penalised = try Sampler(SamplingParameters(repetitionPenalty: 2))
        XCTAssertEqual(penalised.sample(logits: logits, history: [1, 1, 1]), 2)
        // A negative logit is multiplied: token 1 (−0.6 → −1.2) falls below token 0.
        XCTAssertEqual(penalised.sample(logits: Tensor([-1.0, -0.6, -3.0, -1.2], shape: [4]), history: [1]), 0)
        XCTAssertEqual(greedy.sample(logits: Tensor([-1.0, -0.6, -3.0, -1.2], shape: [4]), history: [1]), 1)
    }

    func testSuppressedTokensAreNeverChosen() throws {
        let logits = Tensor([1.0, 3.0, 2.9, -1.0], shape: [4])
        var greedy = try Sampler(SamplingParameters(suppressedTokenIDs: [1, 7]))  // ids outside the vocabulary are ignored
        XCTAssertEqual(greedy.sample(logits: logits, history: []), 2)
        let f = try frequencies([1.0, 3.0, 2.9, -1.0], SamplingParameters(temperature: 1, seed: 3, suppressedTokenIDs: [1, 2]))
        XCTAssertEqual(f[1] + f[2], 0)
        let e = [1.0, -1.0].map { exp($0) }
        XCTAssertEqual(f[0], e[0] / (e[0] + e[1]), accuracy: 0.012)
    }

    func testTemperatureSamplingFollowsSoftmax() throws {
        let logits: [Float] = [0, 1, 2, 0.5]
        for temperature: Float in [1, 0.5] {
            let f = try frequencies(logits, SamplingParameters(temperature: temperature, seed: 11))
            let e = logits.map { exp(Double($0 / temperature)) }, z = e.reduce(0, +)
            for i in 0..<4 { XCTAssertEqual(f[i], e[i] / z, accuracy: 0.012, "T \(temperature) id \(i)") }
        }
    }

    func testTopKAndTopPKeepHuggingFacesSets() throws {
        // Probabilities 0.5, 0.3, 0.15, 0.05.
        let logits = [0.5, 0.3, 0.15, 0.05].map { Float(log($0)) }
        let k2 = try frequencies(logits, SamplingParameters(temperature: 1, topK: 2, seed: 1))
        XCTAssertEqual(k2[0], 0.5 / 0.8, accuracy: 0.012); XCTAssertEqual(k2[2] + k2[3], 0)
        // top-p 0.75: token 2 has 0.8 ranked above it (≥ 0.75) → removed; 0.85 keeps it.
        let p75 = try frequencies(logits, SamplingParameters(temperature: 1, topP: 0.75, seed: 2))
        XCTAssertEqual(p75[2] + p75[3], 0); XCTAssertEqual(p75[1], 0.3 / 0.8, accuracy: 0.012)
        let p85 = try frequencies(logits, SamplingParameters(temperature: 1, topP: 0.85, seed: 3))
        XCTAssertEqual(p85[3], 0); XCTAssertEqual(p85[2], 0.15 / 0.95, accuracy: 0.012)
        // Ties at the k-th logit are kept, as torch's `scores < kth_value` filter does.
        let ties = try frequencies([2, 1, 1, 0], SamplingParameters(temperature: 1, topK: 2, seed: 4), draws: 4000)
        XCTAssertGreaterThan(ties[2], 0); XCTAssertEqual(ties[3], 0)
    }

    /// A flat 1000-token distribution: the nucleus (500 tokens for top-p 0.5) is larger than the 256-candidate
    /// shortcut, so the full ranking is used.
    func testTopPBeyondTheCandidateShortcut() throws {
        let f = try frequencies([Float](repeating: 0, count: 1000), SamplingParameters(temperature: 1, topP: 0.5, seed: 5), draws: 5000)
        let drawn = f.filter { $0 > 0 }.count
        XCTAssertGreaterThan(drawn, 400)
        XCTAssertLessThanOrEqual(drawn, 500)
    }

    func testSeedReproducesAndBadSettingsAreErrors() throws {
        let logits = Tensor((0..<50).map { Float($0 % 7) }, shape: [50])
        var a = try Sampler(SamplingParameters(temperature: 0.8, topK: 10, topP: 0.9, seed: 42))
        var b = try Sampler(SamplingParameters(temperature: 0.8, topK: 10, topP: 0.9, seed: 42))
        let first = (0..<50).map { _ in a.sample(logits: logits, history: []) }
        XCTAssertEqual(first, (0..<50).map { _ in b.sample(logits: logits, history: []) })
        XCTAssertGreaterThan(Set(first).count, 1)
        for (bad, name) in [(SamplingParameters(temperature: -1), "temperature"), (SamplingParameters(topK: -2), "top-k"),
                            (SamplingParameters(topP: 0), "top-p"), (SamplingParameters(repetitionPenalty: 0), "repetition-penalty")] {
            XCTAssertThrowsError(try Sampler(bad)) { XCTAssertTrue("\($0)".contains(name), "\($0)") }
        }
    }
}
