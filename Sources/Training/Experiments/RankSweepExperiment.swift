// The LoRA paper's rank experiment (Hu et al. 2021, Table 6 and Figure 3) on the user's model and data: short
// LoRA runs that are identical except for r (same seed, data order, steps, learning-rate schedule, targets and
// scaling rule), each scored on the valid split (loss, perplexity) and optionally by greedy exact match; then
// φ(i, j) between the A matrices of two ranks (8 and 64 by default), module by module and averaged per module type.
//
// Scaling rule. The paper keeps α fixed ("we simply set α to the first r we try and do not tune it", §4.1), so the
// scale s = α/r shrinks as r grows; with Adam this keeps the size of the early ΔW = s·B·A roughly independent of
// r. That is the default here (`.fixedAlpha`); `.fixedScale` (α = s·r) and rsLoRA's α/√r are there to compare.
//
// Initialisation. Each r draws its A from its own random stream. With one stream for all ranks, A_{r=8} would be
// the first 8 rows of A_{r=64} (PEFT's Kaiming init fills row by row), so φ(A_8, A_64) would be 1 before any
// training and would measure the shared seed, not what the runs learnt. B starts at zero in every run, so the
// left singular vectors of ΔW are learnt from scratch; the result reports that comparison (delta-left) as well.
import Foundation
import Analysis
import PEFT
import TensorCore

/// How α is chosen for each rank of a sweep (the LoRA scale s = α/r, or α/√r for rsLoRA).
public enum RankSweepScaling: Equatable, Sendable {
    /// The same α for every r (the LoRA paper's rule): s = α/r.
    case fixedAlpha(Double)
    /// The same scale s for every r: α = s·r.
    case fixedScale(Double)
    /// rsLoRA: the same α for every r with s = α/√r.
    case rankStabilized(alpha: Double)

    /// lora_alpha for rank `r`.
    public func alpha(rank r: Int) -> Double {
        switch self {
        case .fixedAlpha(let alpha), .rankStabilized(let alpha): return alpha
        case .fixedScale(let s): return s * Double(r)
        }
    }

    /// The scale s applied to B·A at rank `r`.
    public func scale(rank r: Int) -> Double {
        switch self {
        case .fixedAlpha(let alpha): return alpha / Double(r)
        case .fixedScale(let s): return s
        case .rankStabilized(let alpha): return alpha / Double(r).squareRoot()
        }
    }

    /// Whether the runs use rsLoRA's α/√r.
    public var usesRSLoRA: Bool { if case .rankStabilized = self { return true }; return false }

    /// "fixed alpha = 16 (s = alpha/r)" and the like.
    public var summary: String {
        switch self {
        case .fixedAlpha(let a): return "fixed alpha = \(formatShort(a)) (s = alpha/r)"
        case .fixedScale(let s): return "fixed scale s = \(formatShort(s)) (alpha = s·r)"
        case .rankStabilized(let a): return "rsLoRA, alpha = \(formatShort(a)) (s = alpha/√r)"
        }
    }
}

/// Why a rank sweep refused its settings.
public enum RankSweepError: Error, CustomStringConvertible, Equatable {
    /// No rank was given (`--ranks` empty).
    case noRanks
    /// `text` in the rank list is not a whole number.
    case unreadableRank(String)
    /// A rank below 1.
    case nonPositiveRank(Int)
    /// The same rank twice: the runs would be identical.
    case duplicateRank(Int)
    /// `rank` exceeds min(out, in) of adapted `module` [out, in]: B·A cannot have that rank.
    case rankExceedsModule(rank: Int, module: String, shape: [Int])
    /// A rank chosen for the φ comparison is not among the swept ranks.
    case similarityRankNotSwept(Int, ranks: [Int])
    /// The model already carries an adapter with the sweep's adapter name.
    case adapterNameInUse(String)

    public var description: String {
        switch self {
        case .noRanks: return "--ranks: no rank given (e.g. --ranks 1,2,4,8,64)"
        case .unreadableRank(let text): return "--ranks: \"\(text)\" is not a whole number (e.g. --ranks 1,2,4,8,64)"
        case .nonPositiveRank(let r): return "--ranks: rank \(r) must be at least 1"
        case .duplicateRank(let r): return "--ranks: rank \(r) is listed twice"
        case let .rankExceedsModule(rank, module, shape):
            return "--ranks: rank \(rank) exceeds min(out, in) = \(shape.min() ?? 0) of module '\(module)' \(shape); "
                + "B·A cannot have rank above \(shape.min() ?? 0)"
        case let .similarityRankNotSwept(r, ranks):
            return "subspace similarity: rank \(r) is not among the swept ranks \(ranks)"
        case .adapterNameInUse(let name):
            return "the model already has an adapter named '\(name)'; the sweep adds and deletes its own"
        }
    }
}

/// Settings of a rank sweep.
public struct RankSweepConfiguration: Sendable {
    /// Ranks to train, in the order they run (distinct, ≥ 1).
    public var ranks: [Int] = [1, 2, 4, 8, 64]
    /// Modules adapted in every run (the paper's W_q, W_v).
    public var targets: ModuleSelector = .names(["q_proj", "v_proj"])
    /// How α follows r.
    public var scaling: RankSweepScaling = .fixedAlpha(16)
    /// LoRA dropout (the masks are the same for every r: the dropout stream does not depend on r).
    public var dropout: Double = 0.05
    /// Shared by every run (steps, batch size, learning rate and schedule, seed …). Its `outputDirectory` is the
    /// sweep's directory: run r writes its adapter and metrics.jsonl to `<outputDirectory>/r<r>/`.
    public var trainer: TrainerConfiguration
    /// The ranks whose A subspaces are compared (low, high); nil: 8 and 64 when both are swept, otherwise the
    /// smallest and the largest rank (no comparison for a single rank).
    public var similarityRanks: (low: Int, high: Int)?
    /// Also score the base model (no adapter): valid loss and exact match, as the "r = 0" row.
    public var evaluateBase = true
    /// Keep each run's final trainer checkpoint (optimizer state; large for big r). Off: only the adapter stays.
    public var keepCheckpoints = false
    /// Written to each adapter's config as base_model_name_or_path.
    public var baseModelNameOrPath: String?

    /// Defaults (ranks 1, 2, 4, 8, 64 on q_proj and v_proj, fixed α = 16), writing under `outputDirectory`.
    public init(outputDirectory: URL) { trainer = TrainerConfiguration(outputDirectory: outputDirectory) }

    /// Ranks from "1,2,4,8,64" (spaces allowed); every entry must be a whole number. Validity (≥ 1, distinct) is
    /// checked by `validate`.
    public static func parseRanks(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.allSatisfy(\.isEmpty) { throw RankSweepError.noRanks }
        return try parts.map { part in
            guard let r = Int(part) else { throw RankSweepError.unreadableRank(part) }
            return r
        }
    }

    /// The (low, high) pair compared by φ, or nil when fewer than two ranks are swept.
    public var comparedRanks: (low: Int, high: Int)? {
        if let similarityRanks { return similarityRanks }
        if ranks.contains(8) && ranks.contains(64) { return (8, 64) }
        guard let low = ranks.min(), let high = ranks.max(), low != high else { return nil }
        return (low, high)
    }

    /// Throws `RankSweepError` for an empty, non-positive or repeated rank, or a φ pair that is not swept; and the
    /// trainer's errors for its settings.
    public func validate() throws {
        guard !ranks.isEmpty else { throw RankSweepError.noRanks }
        var seen = Set<Int>()
        for r in ranks {
            guard r >= 1 else { throw RankSweepError.nonPositiveRank(r) }
            guard seen.insert(r).inserted else { throw RankSweepError.duplicateRank(r) }
        }
        if let pair = similarityRanks {
            for r in [pair.low, pair.high] where !ranks.contains(r) { throw RankSweepError.similarityRankNotSwept(r, ranks: ranks) }
        }
        try trainer.validate()
    }

    /// The LoRA config of the run with rank `r`.
    public func loraConfig(rank r: Int) -> LoRAConfig {
        var config = LoRAConfig(r: r, loraAlpha: scaling.alpha(rank: r), loraDropout: dropout, targetModules: targets)
        config.useRSLoRA = scaling.usesRSLoRA
        return config
    }
}

/// Runs the sweep on one model. Each run's adapter is deleted once it is saved and scored, so the model ends with
/// the adapters it started with (all inactive: each run makes its own adapter the only active one).
public final class RankSweepExperiment {
    public let model: any TrainableLanguageModel
    public let configuration: RankSweepConfiguration
    public let trainData: TokenizedDataset
    public let validData: TokenizedDataset
    public let paddingID: Int32
    /// Scores the model as it stands (called with each run's adapter active, and once without adapters for the
    /// base row): greedy exact match on a test split. nil: no exact-match column.
    public var exactMatch: (() throws -> ExactMatchReport)?
    /// Progress lines (nil: silent).
    public var progress: ProgressLine?

    /// Checks the settings against the model: ranks, and r ≤ min(out, in) of every targeted matrix.
    public init(model: any TrainableLanguageModel, configuration: RankSweepConfiguration, trainData: TokenizedDataset,
                validData: TokenizedDataset, paddingID: Int32) throws {
        try configuration.validate()
        let name = configuration.trainer.adapterName
        guard !model.adapterNames.contains(name) else { throw RankSweepError.adapterNameInUse(name) }
        let layers = try model.targetedLinears(configuration.loraConfig(rank: configuration.ranks[0]))
        for r in configuration.ranks {
            // Name the narrowest matrix the rank does not fit.
            if let narrow = layers.filter({ r > min($0.outFeatures, $0.inFeatures) })
                .min(by: { min($0.outFeatures, $0.inFeatures) < min($1.outFeatures, $1.inFeatures) }) {
                throw RankSweepError.rankExceedsModule(rank: r, module: narrow.path, shape: [narrow.outFeatures, narrow.inFeatures])
            }
        }
        self.model = model; self.configuration = configuration; self.trainData = trainData; self.validData = validData
        self.paddingID = paddingID
    }

    /// The directory run `r` writes to.
    public func runDirectory(rank r: Int) -> URL {
        configuration.trainer.outputDirectory.appendingPathComponent("r\(r)")
    }

    /// Trains every rank in turn, scores it, then compares the A subspaces of the two compared ranks.
    public func run() throws -> RankSweepResult {
        let c = configuration, name = c.trainer.adapterName
        var base: RankSweepBaseline?
        if c.evaluateBase {
            let evaluator = try trainer(rank: c.ranks[0])
            try model.setActiveAdapters([])  // the base model: no adapter active
            let loss = try evaluator.evaluate(validData, maxBatches: c.trainer.evalBatches, step: 0)
            let match = try exactMatch?()
            base = RankSweepBaseline(validLoss: loss.loss, exactMatch: match.map(RankSweepExactMatch.init))
            progress?.print(String(format: "base model: valid loss %.4f", loss.loss)
                + (match.map { String(format: ", exact match %d/%d", $0.correct, $0.total) } ?? ""))
        }
        var runs: [RankSweepRun] = []
        for r in c.ranks {
            do { runs.append(try train(rank: r)) } catch {
                try? model.deleteAdapter(name)  // a failed run must not leave its adapter on the model
                throw error
            }
        }
        var similarity: RankSweepSimilarity?
        if let pair = c.comparedRanks {
            let low = try AdapterWeights.load(from: runDirectory(rank: pair.low))
            let high = try AdapterWeights.load(from: runDirectory(rank: pair.high))
            similarity = RankSweepSimilarity(
                ranks: [pair.low, pair.high],
                aRight: try AdapterSimilarity.compare(low, high, source: .aRight),
                deltaLeft: try AdapterSimilarity.compare(low, high, source: .deltaLeft))
        }
        return RankSweepResult(ranks: c.ranks, targets: "\(c.targets.json.anyValue)", scaling: c.scaling.summary,
                               iterations: c.trainer.iterations, batchSize: c.trainer.batchSize,
                               learningRate: c.trainer.learningRate, seed: c.trainer.seed, base: base, runs: runs,
                               similarity: similarity)
    }

    /// One run: a fresh adapter of rank `r`, trained, scored, saved to r<r>/ and deleted from the model.
    func train(rank r: Int) throws -> RankSweepRun {
        let c = configuration, name = c.trainer.adapterName
        let started = Date()
        let trainer = try self.trainer(rank: r)
        // A fresh adapter from the rank's own stream (see the file comment); the trainer trains it in place.
        var initRNG = RandomGenerator(seed: c.trainer.seed).derived(0x5A_EE9 &+ UInt64(r))
        try model.addLoRA(trainer.loraConfig, name: name, rng: &initRNG)
        let initialA = model.adapterParameters(name).filter { $0.0.hasSuffix("lora_A.weight") }.map { ($0.0, $0.1.value) }
        let parameters = model.adapterParameters(name).reduce(0) { $0 + $1.1.value.count }
        progress?.print("r = \(r): alpha \(formatShort(c.scaling.alpha(rank: r))), scale \(formatShort(c.scaling.scale(rank: r))), "
            + "\(parameters) trainable parameters")
        let summary = try trainer.run()
        let valid = try trainer.evaluate(validData, maxBatches: c.trainer.evalBatches, step: c.trainer.iterations)
        let match = try exactMatch?()
        let finalA = Dictionary(uniqueKeysWithValues: model.adapterParameters(name).map { ($0.0, $0.1.value) })
        let drift = initialA.map { name, start in relativeChange(from: start, to: finalA[name]!) }
        try model.deleteAdapter(name)
        if !c.keepCheckpoints { try? FileManager.default.removeItem(at: runDirectory(rank: r).appendingPathComponent("checkpoints")) }
        let run = RankSweepRun(rank: r, alpha: c.scaling.alpha(rank: r), scale: c.scaling.scale(rank: r),
                               trainableParameters: parameters, trainLosses: summary.steps.map(\.loss),
                               validLoss: valid.loss, exactMatch: match.map(RankSweepExactMatch.init),
                               meanRelativeChangeOfA: drift.reduce(0, +) / Double(max(drift.count, 1)),
                               seconds: Date().timeIntervalSince(started), adapterDirectory: runDirectory(rank: r).path)
        progress?.print(String(format: "r = %d: valid loss %.4f (perplexity %.3f)", r, run.validLoss, run.validPerplexity)
            + (match.map { String(format: ", exact match %d/%d", $0.correct, $0.total) } ?? "")
            + String(format: ", %.0f s", run.seconds))
        return run
    }

    /// The trainer of run `r`: the shared settings, its own directory, evaluation done by the sweep after the run.
    func trainer(rank r: Int) throws -> Trainer {
        var t = configuration.trainer
        t.outputDirectory = runDirectory(rank: r)
        t.overwriteOutput = true   // the sweep owns r<r>/: a repeated sweep replaces its runs
        t.evalEvery = 0
        t.saveEvery = 0
        var lora = configuration.loraConfig(rank: r)
        lora.baseModelNameOrPath = configuration.baseModelNameOrPath
        let trainer = try Trainer(model: model, loraConfig: lora, trainData: trainData, validData: nil, paddingID: paddingID,
                                  configuration: t)
        trainer.progress = progress
        return trainer
    }
}

/// ‖end − start‖_F / ‖start‖_F (0 for a zero start).
func relativeChange(from start: Tensor, to end: Tensor) -> Double {
    let norm = Double(start.l2Norm())
    return norm > 0 ? Double(Tensor.sub(end, start).l2Norm()) / norm : 0
}

/// 16, 0.5, 2.83: short numbers for labels.
func formatShort(_ x: Double) -> String {
    x == x.rounded() && abs(x) < 1e9 ? String(Int(x)) : String(format: "%.3g", x)
}
