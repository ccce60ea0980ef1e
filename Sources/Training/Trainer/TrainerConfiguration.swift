// The trainer's settings, with the defaults PEFT and mlx-lm users expect.
import Foundation

/// Hyper-parameters and bookkeeping of one training run.
public struct TrainerConfiguration: Sendable {
    /// Optimizer steps in the whole run (a resumed run continues up to this count).
    public var iterations: Int = 1000
    /// Rows per micro-batch (examples, or packed rows with packing).
    public var batchSize: Int = 4
    /// Micro-batches per optimizer step; the step's gradient is that of the token-weighted mean over all of them.
    public var gradientAccumulation: Int = 1
    public var learningRate: Double = 2e-4
    public var warmupSteps: Int = 0
    public var decay: LRDecay = .cosine
    public var minLearningRate: Double = 0
    /// AdamW's decoupled weight decay (HF Trainer's default 0) and moment settings.
    public var weightDecay: Double = 0
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var epsilon: Double = 1e-8
    /// LoRA+: lora_B (and 1-D adapter parameters such as DoRA's magnitude) learn at learningRate × this ratio
    /// (PEFT's loraplus_lr_ratio); nil: one learning rate for all.
    public var loraPlusLearningRateRatio: Double? = nil
    /// Global gradient-norm limit (HF's max_grad_norm 1.0); nil turns clipping off.
    public var clipNorm: Float? = 1.0
    /// Evaluate on the valid split every N steps (0: only at the start and the end).
    public var evalEvery: Int = 100
    /// Batches per evaluation (nil: the whole valid split).
    public var evalBatches: Int? = nil
    /// Write a checkpoint every N steps (0: only at the end).
    public var saveEvery: Int = 100
    /// Keep only the newest N checkpoints (0: keep all).
    public var keepCheckpoints: Int = 0
    /// Seeds adapter initialisation, data order and dropout.
    public var seed: UInt64 = 0
    /// Pack several examples into each row of `packLength` tokens instead of padding one per row.
    public var packLength: Int? = nil
    /// Recompute each layer's activations during backward instead of keeping them (less memory, ~1/3 more compute).
    public var recomputeActivations = false
    /// Name of the adapter being trained.
    public var adapterName = "default"
    /// Let a fresh run delete the checkpoints an earlier run left in the output directory.
    public var overwriteOutput = false
    /// Where checkpoints, the final adapter, metrics.jsonl and loss.svg go.
    public var outputDirectory: URL

    /// Defaults, writing to `outputDirectory`.
    public init(outputDirectory: URL) { self.outputDirectory = outputDirectory }

    /// Throws for values that make no run.
    public func validate() throws {
        func positive(_ value: Int, _ name: String) throws {
            guard value > 0 else { throw TrainingError.invalidOption(name: name, reason: "\(value) must be at least 1") }
        }
        try positive(iterations, "iterations"); try positive(batchSize, "batch size"); try positive(gradientAccumulation, "grad accum")
        for (value, name) in [(evalEvery, "eval every"), (saveEvery, "save every"), (keepCheckpoints, "keep checkpoints"), (warmupSteps, "warmup")]
        where value < 0 {
            throw TrainingError.invalidOption(name: name, reason: "\(value) must be ≥ 0")
        }
        if let evalBatches { try positive(evalBatches, "eval batches") }
        if let clipNorm, !(clipNorm > 0 && clipNorm.isFinite) {
            throw TrainingError.invalidOption(name: "clip", reason: "\(clipNorm) must be a positive number (omit it to turn clipping off)")
        }
        if let packLength { try positive(packLength, "pack length") }
        if let ratio = loraPlusLearningRateRatio, !(ratio.isFinite && ratio > 0) {
            throw TrainingError.invalidOption(name: "loraplus lr ratio", reason: "\(ratio) must be a positive number (the LoRA+ paper suggests 16)")
        }
        _ = try LRSchedule(peakLearningRate: learningRate, warmupSteps: warmupSteps, totalSteps: iterations, decay: decay,
                           minLearningRate: minLearningRate)
    }

    /// The settings a resumed run must share with the run that wrote the checkpoint, as checkpoint metadata.
    var resumeSettings: [String: String] {
        ["batch_size": String(batchSize), "gradient_accumulation": String(gradientAccumulation), "seed": String(seed),
         "pack_length": packLength.map(String.init) ?? "none", "adapter_name": adapterName]
    }
}
