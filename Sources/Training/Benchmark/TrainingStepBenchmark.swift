// Times the phases of a training step as the Trainer runs them (forward; backward of the loss and of AdaLoRA's
// regulariser, through the same `AdapterMethod` call; clip + AdamW + the rank allocator's update), on one fixed
// batch, so `lorakit bench train` measures the product's own step. Each phase is timed on the wall clock; the median over the timed steps is the
// figure reported, which is robust to the odd slow step on a shared machine.
import Autograd
import Foundation
import NN
import PEFT
import TensorCore

/// Per-phase seconds of the timed steps, and what the process held in memory.
public struct TrainingStepBenchmarkResult: Sendable {
    /// Seconds of each timed step in `model.loss`.
    public let forwardSeconds: [Double]
    /// Seconds of each timed step in `backward` (AdaLoRA: and the regulariser's).
    public let backwardSeconds: [Double]
    /// Seconds of each timed step in clipping, AdamW, AdaLoRA's allocator update and clearing gradients.
    public let optimizerSeconds: [Double]
    /// Loss of every step, warm-up included (it must fall: the benchmark trains for real).
    public let losses: [Float]
    /// Tokens per step (rows × length).
    public let tokensPerStep: Int
    /// Trainable parameters.
    public let trainableParameters: Int
    /// VmHWM after the last step.
    public let peakResidentBytes: Int

    /// Median seconds of a whole step.
    public var stepSeconds: Double { median(zip(zip(forwardSeconds, backwardSeconds), optimizerSeconds).map { $0.0 + $0.1 + $1 }) }
    public var tokensPerSecond: Double { Double(tokensPerStep) / stepSeconds }
}

/// The median of `values` (0 when empty).
public func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

public enum TrainingStepBenchmark {
    /// A batch of `rows` × `length` pseudo-random ordinary tokens, every position learnt (the usual pretraining-style
    /// benchmark batch). Ids are drawn from [low, vocabSize) so special tokens are avoided.
    public static func randomBatch(rows: Int, length: Int, vocabSize: Int, seed: UInt64 = 7) -> TokenBatch {
        var rng = RandomGenerator(seed: seed)
        let low = min(256, vocabSize - 1)
        let examples = (0..<rows).map { _ -> [TokenizedExample] in
            let ids = (0..<length).map { _ in Int32(low + Int(rng.nextUInt64() % UInt64(vocabSize - low))) }
            return [TokenizedExample(ids: ids, labels: ids)]
        }
        return TokenBatch(rows: examples, paddingID: 0, length: length)
    }

    /// Adds `method`'s adapter (named "default") to `model`, then runs `warmupSteps` untimed and `steps` timed
    /// optimizer steps on `batch`: AdamW at `learningRate`, global-norm clipping at 1, dropout on, and for AdaLoRA
    /// the regulariser and the rank allocator (its schedule set to span the run).
    public static func run(model: any TrainableLanguageModel, method: AdapterMethod, batch: TokenBatch,
                           warmupSteps: Int, steps: Int, learningRate: Double = 1e-4) throws -> TrainingStepBenchmarkResult {
        let adapter = "default"
        let method = try method.resolved(iterations: warmupSteps + steps)
        var initRNG = RandomGenerator(seed: 3)
        var allocator: RankAllocator?
        switch method {
        case .lora(let config): try model.addLoRA(config, name: adapter, rng: &initRNG)
        case .adalora(let config, _):
            try model.addAdaLoRA(config, name: adapter, rng: &initRNG)
            allocator = try RankAllocator(model: model, adapter: adapter, config: config)
        }
        let parameters = model.adapterParameters(adapter)
        let variables = parameters.map(\.1)
        let optimizer = try AdamW(parameters: parameters, learningRate: learningRate, weightDecay: 0)
        var rng = RandomGenerator(seed: 1).derived(0xD209)
        var forward: [Double] = [], backward: [Double] = [], optimizing: [Double] = [], losses: [Float] = []
        func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
        for step in 0..<(warmupSteps + steps) {
            let t0 = now()
            let loss = try model.loss(batch: batch, training: true, rng: &rng)
            let value = loss.value.scalarValue
            guard value.isFinite else { throw TrainingError.nonFinite(quantity: "loss", step: step + 1, value: value, learningRate: learningRate, lastCheckpoint: nil) }
            let t1 = now()
            loss.backward()
            method.regularizationLoss(allocator)?.backward()
            let t2 = now()
            _ = clipGradNorm(variables, maxNorm: 1)
            optimizer.step()
            try allocator?.update(step: step)
            optimizer.zeroGrad()
            let t3 = now()
            losses.append(value)
            if step >= warmupSteps {
                forward.append(Double(t1 - t0) / 1e9); backward.append(Double(t2 - t1) / 1e9); optimizing.append(Double(t3 - t2) / 1e9)
            }
        }
        return TrainingStepBenchmarkResult(forwardSeconds: forward, backwardSeconds: backward, optimizerSeconds: optimizing,
                                           losses: losses, tokensPerStep: batch.rows * batch.length,
                                           trainableParameters: variables.reduce(0) { $0 + $1.value.count },
                                           peakResidentBytes: ProcessMemory.peakResidentBytes())
    }
}
