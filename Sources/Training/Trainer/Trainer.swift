// The training loop: LoRA or AdaLoRA adapters trained by AdamW on a language model's chunked cross-entropy.
//
// One optimizer step = `gradientAccumulation` micro-batches of `batchSize` rows. Each micro-batch's mean loss is
// back-propagated with weight (its targets / the step's targets), so the step's gradient is exactly that of the
// mean over every target of the step, however the targets fall into micro-batches (HF's num_items_in_batch fix).
// Then: global-norm clipping, the scheduled learning rate, AdamW, and the bookkeeping (log line, metrics.jsonl,
// evaluation, checkpoint). A step whose loss or gradient norm is not finite is never applied: the run stops and
// the checkpoints on disk stay as they were.
// AdaLoRA adds, per optimizer step: γ·R(A, B) back-propagated once after the micro-batches, and after AdamW (with
// the clipped gradients still present, as PEFT's update_and_allocate needs) the rank allocator's update; only then
// are the gradients cleared. Its budget schedule spans the run (total_step = iterations).
import Autograd
import Collectives
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
    /// AdaLoRA: every module's kept triplets when the call ended (nil for LoRA).
    public let adaLoRARanks: [RankAllocator.ModuleRank]?
}

/// Trains one LoRA or AdaLoRA adapter of a `TrainableLanguageModel`.
public final class Trainer {
    public let model: any TrainableLanguageModel
    /// The method and its config, checked (AdaLoRA: total_step set to the iterations).
    public let method: AdapterMethod
    /// The LoRA fields of the method (for AdaLoRA: those that still apply).
    public var loraConfig: LoRAConfig { method.loraConfig }
    /// AdaLoRA's rank allocator, built by `run` (nil for LoRA and before a run); its `config` holds the rank pattern.
    public private(set) var rankAllocator: RankAllocator?
    public let configuration: TrainerConfiguration
    public let trainData: TokenizedDataset
    public let validData: TokenizedDataset?
    public let paddingID: Int32
    /// Live progress output (nil: silent).
    public var progress: ProgressLine?
    /// Called after every step (tests, custom logging).
    public var onStep: ((StepMetrics) -> Void)?
    /// The ranks training this adapter together (data parallelism, see Trainer+DataParallel.swift); one process by
    /// default. Only rank 0 writes files and prints.
    public var collective: any Collective = SingleProcessCollective()

    /// Checks the configuration and the method's config; nothing is read or written until `run`.
    public init(model: any TrainableLanguageModel, method: AdapterMethod, trainData: TokenizedDataset,
                validData: TokenizedDataset?, paddingID: Int32, configuration: TrainerConfiguration) throws {
        try configuration.validate()
        self.method = try method.resolved(iterations: configuration.iterations)
        self.model = model; self.trainData = trainData; self.validData = validData
        self.paddingID = paddingID; self.configuration = configuration
    }

    /// A LoRA trainer (`method: .lora(loraConfig)`).
    public convenience init(model: any TrainableLanguageModel, loraConfig: LoRAConfig, trainData: TokenizedDataset,
                            validData: TokenizedDataset?, paddingID: Int32, configuration: TrainerConfiguration) throws {
        try self.init(model: model, method: .lora(loraConfig), trainData: trainData, validData: validData, paddingID: paddingID,
                      configuration: configuration)
    }

    var checkpointsDirectory: URL { configuration.outputDirectory.appendingPathComponent("checkpoints") }

    /// Trains from scratch, or from `resume` (a checkpoint directory or a run directory: its newest checkpoint),
    /// up to `configuration.iterations` steps; writes checkpoints, metrics.jsonl and the final adapter.
    /// `stoppingAfter` ends the call early at that step with a checkpoint (as a time-limited job would), leaving the
    /// schedule as for the full run; a later call resumes from it.
    @discardableResult
    public func run(resumeFrom resume: URL? = nil, stoppingAfter stopStep: Int? = nil) throws -> TrainingSummary {
        let c = configuration
        let progress = collective.isRoot ? self.progress : nil, writes = collective.isRoot  // data parallel: rank 0 writes
        try checkDataParallelBatch()
        let checkpoint = try resume.map { try TrainerCheckpoint.load(try TrainerCheckpoint.resolve($0)) }
        if let checkpoint { try checkSettings(of: checkpoint) } else if writes { try prepareOutputDirectory() }
        // A run killed between writing a checkpoint and rotating the old ones leaves one too many; finish that
        // rotation now (a resume already at the last step writes no checkpoint that would). Only when resuming from
        // the newest checkpoint: an older one picked on purpose must not be rotated away.
        if let checkpoint, writes,
           TrainerCheckpoint.list(in: checkpointsDirectory).last?.directory.standardizedFileURL.path == checkpoint.directory.standardizedFileURL.path {
            pruneCheckpoints()
        }
        model.recomputesActivations = c.recomputeActivations
        let adapterMethod = try prepareAdapter(from: checkpoint)
        let allocator = try prepareAllocator(from: checkpoint)
        rankAllocator = allocator
        let parameters = model.adapterParameters(c.adapterName)
        let groups = try c.loraPlusLearningRateRatio.map { try LoRAPlus.parameterGroups(parameters, ratio: $0) } ?? [ParameterGroup(parameters)]
        let optimizer = try AdamW(groups: groups, learningRate: c.learningRate, beta1: c.beta1, beta2: c.beta2,
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
        let metricsURL = c.outputDirectory.appendingPathComponent("metrics.jsonl")
        let metrics = writes ? try MetricsLog(url: metricsURL, keepingStepsThrough: checkpoint.map { _ in startStep }) : nil
        let trainable = parameters.reduce(0) { $0 + $1.1.value.count }
        progress?.print("Training adapter '\(c.adapterName)': \(trainable) parameters in \(parameters.count) tensors; "
            + "\(trainData.examples.count) examples (\(trainData.truncatedCount) truncated, \(trainData.droppedCount) dropped)"
            + (checkpoint.map { "; resuming at step \($0.step) from \($0.directory.path)" } ?? ""))
        if let allocator, case .adalora(let config, let form) = method {
            progress?.print(AdaLoRASchedule.summary(config, modules: allocator.modules.count, regularization: form))
        }

        var evaluations: [EvaluationResult] = []
        func evaluateNow(_ step: Int) throws {
            guard let valid = validData else { return }
            let result = try evaluate(valid, maxBatches: c.evalBatches, step: step)
            evaluations.append(result)
            metrics?.append(["split": .string("valid"), "step": .int(step), "loss": .double(Double(result.loss)),
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
            let traffic = collective.statistics
            let (stepLoss, targets) = try accumulateStepGradients(batches, parameters: parameters.map(\.1), rng: &rng) { value in
                TrainingError.nonFinite(quantity: "loss", step: step + 1, value: value, learningRate: lr, lastCheckpoint: lastCheckpoint?.path)
            }
            // AdaLoRA: γ·R(A, B) once per optimizer step (PEFT adds it to every micro-batch loss, which its gradient
            // accumulation then averages: the same once-per-step term).
            var regularization: Float? = nil
            if let term = method.regularizationLoss(allocator) {
                let value = term.value.scalarValue
                guard value.isFinite else {
                    throw TrainingError.nonFinite(quantity: "orthogonal regularisation", step: step + 1, value: value, learningRate: lr,
                                                  lastCheckpoint: lastCheckpoint?.path)
                }
                term.backward()
                regularization = value
            }
            let variables = parameters.map(\.1)
            let norm = c.clipNorm.map { clipGradNorm(variables, maxNorm: $0) } ?? gradientNorm(variables)
            guard norm.isFinite else {
                throw TrainingError.nonFinite(quantity: "gradient norm", step: step + 1, value: norm, learningRate: lr, lastCheckpoint: lastCheckpoint?.path)
            }
            optimizer.step()
            // A finite gradient times a huge learning rate can still overflow a weight to Inf: stop before any
            // checkpoint or adapter file could hold it (found by ReliabilityTests: lr 1e300 wrote Inf into step 2).
            for (name, parameter) in parameters {
                guard let bad = parameter.value.nonFiniteReport() else { continue }
                throw TrainingError.nonFinite(quantity: "adapter weight \(name) after the update", step: step + 1, value: bad.firstValue,
                                              learningRate: lr, lastCheckpoint: lastCheckpoint?.path)
            }
            let allocation = try allocator?.update(step: step)  // reads the gradients: before they are cleared
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
                                peakMemoryBytes: ProcessMemory.peakResidentBytes(), budget: allocation?.budget,
                                note: allocation.map { "budget \($0.budget)/\(allocator!.initialBudget)" })
            steps.append(m)
            var record: [String: MetricValue] = [
                "split": .string("train"), "step": .int(done), "loss": .double(Double(m.loss)),
                "learning_rate": .double(lr), "grad_norm": .double(Double(norm)), "tokens": .int(tokens),
                "targets": .int(targets), "tokens_per_second": .double(m.tokensPerSecond.rounded()),
                "elapsed_seconds": .double((elapsed * 1000).rounded() / 1000),
                "peak_memory_mb": .int(m.peakMemoryBytes / 1_048_576)]
            if let allocation { record.merge(AdaLoRARankLog.record(allocation, regularization: regularization)) { $1 } }
            record.merge(dataParallelRecord(since: traffic)) { $1 }
            metrics?.append(record)
            progress?.update(m)
            onStep?(m)

            if (c.evalEvery > 0 && done % c.evalEvery == 0) || done == c.iterations { try evaluateNow(done) }
            if (c.saveEvery > 0 && done % c.saveEvery == 0) || done == endStep {
                try checkReplicasAgree(parameters, allocatorState: allocator?.exportState() ?? [:], step: done)
                if !writes { lastCheckpoint = checkpointsDirectory.appendingPathComponent(TrainerCheckpoint.directoryName(step: done)); continue }
                lastCheckpoint = try TrainerCheckpoint.write(
                    into: checkpointsDirectory, step: done, model: model, adapterName: c.adapterName, method: adapterMethod,
                    allocatorState: allocator?.exportState() ?? [:], optimizer: optimizer, dataPosition: sampler.position, rng: rng,
                    settings: resumeSettings)
                pruneCheckpoints()
                if done < c.iterations { progress?.print("step \(done): checkpoint \(lastCheckpoint!.path)") }
            }
        }
        progress?.finish()
        if endStep == c.iterations && writes {
            switch adapterMethod {
            case .lora(let config): try saveFinalLoRA(config: config)  // PiSSA/OLoRA: converted for the original base
            case .adalora:  // sliced to the final pattern, rank_pattern in adapter_config.json
                try AdapterFiles.saveAdaLoRA(model, adapter: c.adapterName, config: allocator!.config, to: c.outputDirectory)
            }
            progress?.print("Adapter saved to \(c.outputDirectory.path)")
        } else if endStep < c.iterations {
            progress?.print("Stopped after step \(endStep) of \(c.iterations); resume with --resume \(c.outputDirectory.path)")
        }
        return TrainingSummary(startStep: startStep, steps: steps, evaluations: evaluations, adapterDirectory: endStep == c.iterations ? c.outputDirectory : nil,
                               lastCheckpoint: lastCheckpoint, metricsFile: metricsURL, adaLoRARanks: allocator?.currentRanks)
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
        for (index, batch) in batches.enumerated() where batch.targetCount > 0 && index % collective.size == collective.rank {
            let loss = try model.loss(batch: batch, training: false, rng: &rng)
            total += Double(loss.value.scalarValue) * Double(batch.targetCount)
            targets += batch.targetCount; tokens += batch.tokenCount
        }
        if collective.size > 1 {  // data parallel: batch i was rank i mod N's
            var sums = [total, Double(targets), Double(tokens)]
            try collective.allReduceSum(&sums)
            total = sums[0]; targets = Int(sums[1]); tokens = Int(sums[2])
        }
        return EvaluationResult(step: step, loss: targets > 0 ? Float(total / Double(targets)) : 0, targets: targets, tokens: tokens)
    }

    /// Adds the adapter (fresh, or from the checkpoint) and makes it the only active one; returns the method with
    /// the config to save (LoRA: the checkpoint's own when resuming).
    func prepareAdapter(from checkpoint: TrainerCheckpoint?) throws -> AdapterMethod {
        let name = configuration.adapterName
        let exists = model.adapterNames.contains(name)
        var result = method
        if let checkpoint {
            if exists {
                try copyAdapterWeights(from: checkpoint.directory)
                if case .lora = method {
                    result = .lora(try LoRAConfig.load(from: checkpoint.directory.appendingPathComponent(AdapterFiles.configName)))
                }
            } else if case .lora(let config) = method, config.initialization.mutatesBase {
                // PiSSA/OLoRA: the same seeded initialisation re-creates the residual base, then the checkpoint's weights.
                var rng = RandomGenerator(seed: configuration.seed).derived(0x1A17)
                try model.addLoRA(config, name: name, rng: &rng)
                try copyAdapterWeights(from: checkpoint.directory)
            } else {
                switch method {
                case .lora: result = .lora(try AdapterFiles.loadLoRA(into: model, from: checkpoint.directory, as: name))
                case .adalora: try AdapterFiles.loadAdaLoRA(into: model, from: checkpoint.directory, as: name)
                }
            }
        } else if !exists {
            var rng = RandomGenerator(seed: configuration.seed).derived(0x1A17)
            switch method {
            case .lora(let config):
                try model.addLoRA(config, name: name, rng: &rng)
                if config.initialization.mutatesBase {  // A₀, B₀ for the conversion at the end (PEFT's initial model)
                    try AdapterFiles.saveLoRA(model, adapter: name, config: config, to: initialAdapterDirectory)
                }
            case .adalora(let config, _): try model.addAdaLoRA(config, name: name, rng: &rng)
            }
        }
        try model.setActiveAdapters([name])
        return result
    }

    /// AdaLoRA: the rank allocator over the adapter's branches, with the checkpoint's state restored. nil for LoRA.
    func prepareAllocator(from checkpoint: TrainerCheckpoint?) throws -> RankAllocator? {
        guard case .adalora(let config, _) = method else { return nil }
        let name = configuration.adapterName
        let branches = model.adaLoRABranches(name)
        guard !branches.isEmpty else {
            throw TrainingError.invalidOption(name: "method", reason: "adapter '\(name)' on the model is not AdaLoRA; train it with its "
                + "own method or use another adapter name")
        }
        if let pruned = branches.first(where: { $0.branch.rank != config.initR }) {
            throw TrainingError.invalidOption(name: "init_r", reason: "module \(pruned.path) has \(pruned.branch.rank) triplets, training "
                + "needs init_r = \(config.initR) in every module (a pruned, saved AdaLoRA adapter cannot be trained further)")
        }
        let allocator = try RankAllocator(model: model, adapter: name, config: config)
        if let checkpoint {
            do { try allocator.importState(checkpoint.allocatorState) } catch {
                throw TrainingError.checkpoint(path: checkpoint.directory.path, reason: "\(error)")
            }
        }
        return allocator
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

    /// The trainer's and the method's settings that a resumed run must share, as checkpoint metadata.
    var resumeSettings: [String: String] { configuration.resumeSettings.merging(method.resumeSettings) { $1 } }

    func checkSettings(of checkpoint: TrainerCheckpoint) throws {
        // The method first: a LoRA checkpoint differs from an AdaLoRA run in every AdaLoRA setting, name the cause.
        for (key, current) in resumeSettings.sorted(by: { ($0.key == "method" ? 0 : 1, $0.key) < ($1.key == "method" ? 0 : 1, $1.key) }) {
            let saved = checkpoint.settings[key] ?? (key == "method" ? "lora" : "missing")  // checkpoints before AdaLoRA: LoRA
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
        for old in all.dropLast(configuration.keepCheckpoints) { TrainerCheckpoint.remove(old.directory) }
    }
}
