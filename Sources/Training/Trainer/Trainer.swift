// The training loop: LoRA adapters trained by AdamW on a language model's chunked cross-entropy.
//
// One optimizer step = `gradientAccumulation` micro-batches of `batchSize` rows. Each micro-batch's mean loss is
// back-propagated with weight (its targets / the step's targets), so the step's gradient is exactly that of the
// mean over every target of the step, however the targets fall into micro-batches (HF's num_items_in_batch fix).
// Then: global-norm clipping, the scheduled learning rate, AdamW, and the bookkeeping (log line, metrics.jsonl,
// evaluation, checkpoint). A step whose loss or gradient norm is not finite is never applied: the run stops and
// the checkpoints on disk stay as they were.
import Autograd
import Foundation
import Formats
import NN
import PEFT
import TensorCore

/// Loss and perplexity on a split.
public struct EvaluationResult: Equatable, Sendable {
    /// Optimizer steps completed when it was measured.
    public let step: Int
    /// Mean cross-entropy over every target of the evaluated batches.
    public let loss: Float
    public var perplexity: Double { exp(Double(loss)) }
    public let targets: Int
    public let tokens: Int
}

/// What a call to `Trainer.run` did.
public struct TrainingSummary {
    /// Steps already done when this call started (0, or the resumed checkpoint's step).
    public let startStep: Int
    /// Every step this call ran, in order.
    public let steps: [StepMetrics]
    public let evaluations: [EvaluationResult]
    /// Directory of the final adapter (PEFT format); nil when the call stopped before the last step.
    public let adapterDirectory: URL?
    /// The newest checkpoint written.
    public let lastCheckpoint: URL?
    public let metricsFile: URL
}

/// Trains one LoRA adapter of a `TrainableLanguageModel`.
public final class Trainer {
    public let model: any TrainableLanguageModel
    public let loraConfig: LoRAConfig
    public let configuration: TrainerConfiguration
    public let trainData: TokenizedDataset
    public let validData: TokenizedDataset?
    public let paddingID: Int32
    /// Live progress output (nil: silent).
    public var progress: ProgressLine?
    /// Called after every step (tests, custom logging).
    public var onStep: ((StepMetrics) -> Void)?

    /// Checks the configuration; nothing is read or written until `run`.
    public init(model: any TrainableLanguageModel, loraConfig: LoRAConfig, trainData: TokenizedDataset,
                validData: TokenizedDataset?, paddingID: Int32, configuration: TrainerConfiguration) throws {
        try configuration.validate()
        try loraConfig.validate()
        self.model = model; self.loraConfig = loraConfig; self.trainData = trainData; self.validData = validData
        self.paddingID = paddingID; self.configuration = configuration
    }

    var checkpointsDirectory: URL { configuration.outputDirectory.appendingPathComponent("checkpoints") }

    /// Trains from scratch, or from `resume` (a checkpoint directory or a run directory: its newest checkpoint),
    /// up to `configuration.iterations` steps; writes checkpoints, metrics.jsonl and the final adapter.
    /// `stoppingAfter` ends the call early at that step with a checkpoint (as a time-limited job would), leaving the
    /// schedule as for the full run; a later call resumes from it.
    @discardableResult
    public func run(resumeFrom resume: URL? = nil, stoppingAfter stopStep: Int? = nil) throws -> TrainingSummary {
        let c = configuration
        let checkpoint = try resume.map { try TrainerCheckpoint.load(try TrainerCheckpoint.resolve($0)) }
        if let checkpoint { try checkSettings(of: checkpoint) } else { try prepareOutputDirectory() }
        let adapterConfig = try prepareAdapter(from: checkpoint)
        let parameters = model.adapterParameters(c.adapterName)
        let optimizer = try AdamW(parameters: parameters, learningRate: c.learningRate, beta1: c.beta1, beta2: c.beta2,
                                  epsilon: c.epsilon, weightDecay: c.weightDecay)
        if let checkpoint {
            do { try optimizer.load(state: checkpoint.optimizerState) } catch {
                throw TrainingError.checkpoint(path: checkpoint.directory.path, reason: "optimizer state does not fit this adapter: \(error)")
            }
        }
        let schedule = try LRSchedule(peakLearningRate: c.learningRate, warmupSteps: c.warmupSteps, totalSteps: c.iterations,
                                      decay: c.decay, minLearningRate: c.minLearningRate)
        var sampler = try BatchSampler(dataset: trainData, batchRows: c.batchSize, seed: c.seed, packLength: c.packLength,
                                       paddingID: paddingID, position: checkpoint?.dataPosition ?? DataPosition())
        var rng = checkpoint?.rng ?? RandomGenerator(seed: c.seed).derived(0xD209)  // dropout stream
        let startStep = checkpoint?.step ?? 0
        guard startStep <= c.iterations else {
            throw TrainingError.invalidOption(name: "iterations", reason: "\(c.iterations) is below the checkpoint's step \(startStep)")
        }
        let metrics = try MetricsLog(url: c.outputDirectory.appendingPathComponent("metrics.jsonl"),
                                     keepingStepsThrough: checkpoint.map { _ in startStep })
        let trainable = parameters.reduce(0) { $0 + $1.1.value.count }
        progress?.print("Training adapter '\(c.adapterName)': \(trainable) parameters in \(parameters.count) tensors; "
            + "\(trainData.examples.count) examples (\(trainData.truncatedCount) truncated, \(trainData.droppedCount) dropped)"
            + (checkpoint.map { "; resuming at step \($0.step) from \($0.directory.path)" } ?? ""))

        var evaluations: [EvaluationResult] = []
        func evaluateNow(_ step: Int) throws {
            guard let valid = validData else { return }
            let result = try evaluate(valid, maxBatches: c.evalBatches, step: step)
            evaluations.append(result)
            metrics.append(["split": .string("valid"), "step": .int(step), "loss": .double(Double(result.loss)),
                            "perplexity": .double(result.perplexity), "targets": .int(result.targets), "tokens": .int(result.tokens)])
            progress?.print(String(format: "step %d: valid loss %.4f, perplexity %.3f", step, result.loss, result.perplexity))
        }
        if startStep == 0 { try evaluateNow(0) }

        var steps: [StepMetrics] = []
        var lastCheckpoint = TrainerCheckpoint.list(in: checkpointsDirectory).last?.directory
        let started = Date()
        var tokensSeen = 0
        let endStep = min(stopStep ?? c.iterations, c.iterations)
        guard endStep >= startStep else {
            throw TrainingError.invalidOption(name: "stop after", reason: "step \(endStep) is before the checkpoint's step \(startStep)")
        }
        for step in startStep..<endStep {
            let lr = schedule.learningRate(at: step)
            optimizer.learningRate = lr
            optimizer.zeroGrad()
            let batches = (0..<c.gradientAccumulation).map { _ in sampler.next() }
            let (stepLoss, targets) = try accumulateGradients(batches, rng: &rng) { value in
                TrainingError.nonFinite(quantity: "loss", step: step + 1, value: value, learningRate: lr, lastCheckpoint: lastCheckpoint?.path)
            }
            let variables = parameters.map(\.1)
            let norm = c.clipNorm.map { clipGradNorm(variables, maxNorm: $0) } ?? gradientNorm(variables)
            guard norm.isFinite else {
                throw TrainingError.nonFinite(quantity: "gradient norm", step: step + 1, value: norm, learningRate: lr, lastCheckpoint: lastCheckpoint?.path)
            }
            optimizer.step()
            optimizer.zeroGrad()  // gradients are not needed past the step: give their memory back now

            let done = step + 1
            let tokens = batches.reduce(0) { $0 + $1.tokenCount }
            tokensSeen += tokens
            let elapsed = Date().timeIntervalSince(started)
            let perStep = elapsed / Double(done - startStep)
            let m = StepMetrics(step: done, totalSteps: c.iterations, loss: stepLoss,
                                learningRate: lr, gradientNorm: norm, tokens: tokens, targets: targets,
                                tokensPerSecond: elapsed > 0 ? Double(tokensSeen) / elapsed : 0,
                                secondsRemaining: perStep * Double(c.iterations - done),
                                peakMemoryBytes: ProcessMemory.peakResidentBytes())
            steps.append(m)
            metrics.append(["split": .string("train"), "step": .int(done), "loss": .double(Double(m.loss)),
                            "learning_rate": .double(lr), "grad_norm": .double(Double(norm)), "tokens": .int(tokens),
                            "targets": .int(targets), "tokens_per_second": .double(m.tokensPerSecond.rounded()),
                            "elapsed_seconds": .double((elapsed * 1000).rounded() / 1000),
                            "peak_memory_mb": .int(m.peakMemoryBytes / 1_048_576)])
            progress?.update(m)
            onStep?(m)

            if (c.evalEvery > 0 && done % c.evalEvery == 0) || done == c.iterations { try evaluateNow(done) }
            if (c.saveEvery > 0 && done % c.saveEvery == 0) || done == endStep {
                lastCheckpoint = try TrainerCheckpoint.write(
                    into: checkpointsDirectory, step: done, model: model, adapterName: c.adapterName, loraConfig: adapterConfig,
                    optimizer: optimizer, dataPosition: sampler.position, rng: rng, settings: c.resumeSettings)
                pruneCheckpoints()
                if done < c.iterations { progress?.print("step \(done): checkpoint \(lastCheckpoint!.path)") }
            }
        }
        progress?.finish()
        if endStep == c.iterations {
            try AdapterFiles.saveLoRA(model, adapter: c.adapterName, config: adapterConfig, to: c.outputDirectory)
            progress?.print("Adapter saved to \(c.outputDirectory.path)")
        } else {
            progress?.print("Stopped after step \(endStep) of \(c.iterations); resume with --resume \(c.outputDirectory.path)")
        }
        return TrainingSummary(startStep: startStep, steps: steps, evaluations: evaluations, adapterDirectory: endStep == c.iterations ? c.outputDirectory : nil,
                               lastCheckpoint: lastCheckpoint, metricsFile: metrics.url)
    }

    /// Runs forward and backward on the micro-batches of one step, each weighted by its share of the step's targets,
    /// so the adapter gradients are those of the mean loss over all targets. Returns that mean and the target count.
    /// A non-finite micro-batch loss throws `nonFinite(value)` before its backward runs.
    public func accumulateGradients(_ batches: [TokenBatch], rng: inout RandomGenerator,
                                    nonFinite: (Float) -> Error = { TrainingError.nonFinite(quantity: "loss", step: 0, value: $0, learningRate: 0, lastCheckpoint: nil) })
        throws -> (loss: Float, targets: Int) {
        let targets = batches.reduce(0) { $0 + $1.targetCount }
        var weighted: Double = 0
        for batch in batches where batch.targetCount > 0 {
            let loss = try model.loss(batch: batch, training: true, rng: &rng)
            let value = loss.value.scalarValue
            guard value.isFinite else { throw nonFinite(value) }
            loss.backward(seed: .scalar(Float(batch.targetCount) / Float(targets)))
            weighted += Double(value) * Double(batch.targetCount)
        }
        return (targets > 0 ? Float(weighted / Double(targets)) : 0, targets)
    }

    /// Mean loss over every target of `dataset` (or its first `maxBatches` batches), dropout off.
    public func evaluate(_ dataset: TokenizedDataset, maxBatches: Int? = nil, step: Int = 0) throws -> EvaluationResult {
        var batches = BatchSampler.sequentialBatches(dataset, batchRows: configuration.batchSize, paddingID: paddingID)
        if let maxBatches { batches = Array(batches.prefix(maxBatches)) }
        var rng = RandomGenerator(seed: configuration.seed).derived(0xE7A1)  // unused without dropout; never the training stream
        var total: Double = 0, targets = 0, tokens = 0
        for batch in batches where batch.targetCount > 0 {
            let loss = try model.loss(batch: batch, training: false, rng: &rng)
            total += Double(loss.value.scalarValue) * Double(batch.targetCount)
            targets += batch.targetCount; tokens += batch.tokenCount
        }
        return EvaluationResult(step: step, loss: targets > 0 ? Float(total / Double(targets)) : 0, targets: targets, tokens: tokens)
    }

    /// Adds the adapter (fresh, or from the checkpoint) and makes it the only active one; returns its config.
    func prepareAdapter(from checkpoint: TrainerCheckpoint?) throws -> LoRAConfig {
        let name = configuration.adapterName
        let exists = model.adapterNames.contains(name)
        var config = loraConfig
        if let checkpoint {
            if exists {
                try copyAdapterWeights(from: checkpoint.directory)
                config = try LoRAConfig.load(from: checkpoint.directory.appendingPathComponent(AdapterFiles.configName))
            } else {
                config = try AdapterFiles.loadLoRA(into: model, from: checkpoint.directory, as: name)
            }
        } else if !exists {
            var rng = RandomGenerator(seed: configuration.seed).derived(0x1A17)
            try model.addLoRA(loraConfig, name: name, rng: &rng)
        }
        try model.setActiveAdapters([name])
        return config
    }

    /// Overwrites the existing adapter's tensors with a checkpoint's, checking every name and shape first.
    func copyAdapterWeights(from directory: URL) throws {
        let url = directory.appendingPathComponent(AdapterFiles.weightsName)
        let file: SafeTensorsFile
        do { file = try SafeTensorsFile(contentsOf: url) } catch { throw TrainingError.checkpoint(path: url.path, reason: "\(error)") }
        var loaded: [(Variable, Tensor)] = []
        for (name, variable) in model.adapterParameters(configuration.adapterName) {
            let key = "base_model.model." + name
            guard file.contains(key) else { throw TrainingError.checkpoint(path: url.path, reason: "tensor \(key) is missing") }
            let tensor = try file.tensor(key)
            guard tensor.shape == variable.shape else {
                throw TrainingError.checkpoint(path: url.path, reason: "tensor \(key) has shape \(tensor.shape), the adapter needs \(variable.shape)")
            }
            loaded.append((variable, tensor))
        }
        for (variable, tensor) in loaded { variable.value = tensor }
    }

    func checkSettings(of checkpoint: TrainerCheckpoint) throws {
        for (key, current) in configuration.resumeSettings.sorted(by: { $0.key < $1.key }) {
            let saved = checkpoint.settings[key] ?? "missing"
            guard saved == current else {
                throw TrainingError.checkpointMismatch(path: checkpoint.directory.path, field: key, checkpoint: saved, current: current)
            }
        }
    }

    /// A fresh run must not mix its checkpoints with an earlier run's (`--resume` would pick the wrong one).
    func prepareOutputDirectory() throws {
        let existing = TrainerCheckpoint.list(in: checkpointsDirectory)
        guard !existing.isEmpty else { return }
        guard configuration.overwriteOutput else {
            throw TrainingError.invalidOption(name: "out", reason: "\(configuration.outputDirectory.path) already holds checkpoints of an "
                + "earlier run (up to step \(existing.last!.step)); resume it with --resume, choose another --out, or pass --overwrite")
        }
        do { try FileManager.default.removeItem(at: checkpointsDirectory) } catch {
            throw TrainingError.file(path: checkpointsDirectory.path, reason: "cannot remove the earlier run's checkpoints: \(error.localizedDescription)")
        }
    }

    func pruneCheckpoints() {
        guard configuration.keepCheckpoints > 0 else { return }
        let all = TrainerCheckpoint.list(in: checkpointsDirectory)
        for old in all.dropLast(configuration.keepCheckpoints) { try? FileManager.default.removeItem(at: old.directory) }
    }
}
