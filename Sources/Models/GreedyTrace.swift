// Greedy decoding that records, for every generated token, its logit and the runner-up's: the margin tells how
// close a comparison with another implementation (llama.cpp) was to flipping at that step. Never stops early, so
// both sides produce exactly `count` tokens; to compare with llama.cpp's --ignore-eos, suppress the same
// end-of-generation tokens (`EndOfGeneration.tokenIDs`), which it never chooses.
import Foundation
import TensorCore
import Tokenizers

/// One greedy step: the chosen token, its logit, and the best other token.
public struct GreedyTraceStep: Sendable {
    public let id: Int32
    public let piece: String
    public let logit: Float
    public let runnerUp: Int32
    public let runnerUpLogit: Float
    public var margin: Float { logit - runnerUpLogit }
}

public enum GreedyTrace {
    /// `count` greedy tokens after `prompt` through the KV-cache path; `suppressed` ids are never chosen (nor runner-up).
    public static func run(model: LlamaModel, tokenizer: BPETokenizer, prompt: [Int32], count: Int,
                           suppressing suppressed: Set<Int32> = []) throws -> [GreedyTraceStep] {
        let cache = KVCache(config: model.config, maxLength: min(model.config.contextLength, prompt.count + count + 1))
        var logits = try model.forward(tokens: prompt, cache: cache)
        var steps: [GreedyTraceStep] = []
        for _ in 0..<count {
            var scores = logits.array
            Sampler.suppress(suppressed, in: &scores)  // as the sampler does: −∞, never chosen
            var best = 0, second = -1
            for i in 1..<scores.count {
                if scores[i] > scores[best] { second = best; best = i } else if second < 0 || scores[i] > scores[second] { second = i }
            }
            guard scores[best] > -.infinity else {
                throw ModelError.invalidArgument(name: "suppressed tokens", reason: "every token of the vocabulary is suppressed")
            }
            let piece = (try? tokenizer.decode([best], skipSpecialTokens: false)) ?? ""
            steps.append(GreedyTraceStep(id: Int32(best), piece: piece, logit: scores[best],
                                         runnerUp: Int32(max(second, 0)), runnerUpLogit: second >= 0 ? scores[second] : -.infinity))
            if steps.count < count { logits = try model.forward(tokens: [Int32(best)], cache: cache) }
        }
        return steps
    }

    /// {"prompt": [ids], "tokens": [ids], "text": ..., "steps": [{id, piece, logit, runner_up, runner_up_logit, margin}]}.
    public static func json(prompt: [Int32], steps: [GreedyTraceStep]) throws -> Data {
        let object: [String: Any] = [
            "prompt": prompt.map(Int.init), "tokens": steps.map { Int($0.id) }, "text": steps.map(\.piece).joined(),
            "steps": steps.map { ["id": Int($0.id), "piece": $0.piece, "logit": Double($0.logit), "runner_up": Int($0.runnerUp),
                                  "runner_up_logit": Double($0.runnerUpLogit), "margin": Double($0.margin)] as [String: Any] },
        ]
        return try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
    }
}
