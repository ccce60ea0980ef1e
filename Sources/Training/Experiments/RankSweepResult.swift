// What a rank sweep measured: one row per r (valid loss, exact match, how far A moved from its initialisation),
// the base model's row, and φ between two ranks' adapters, per module and averaged per module type (q_proj,
// v_proj, …) as in the LoRA paper's Figure 3. JSON with snake_case keys; a text table; SVG plots.
import Foundation
import Analysis
import Plots

/// Exact-match counts of one evaluation.
public struct RankSweepExactMatch: Sendable, Encodable, Equatable {
    public let correct: Int
    public let total: Int
    /// correct / total.
    public var accuracy: Double { total == 0 ? 0 : Double(correct) / Double(total) }

    /// The counts of a report.
    public init(_ report: ExactMatchReport) { correct = report.correct; total = report.total }

    enum CodingKeys: String, CodingKey { case correct, total, accuracy }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(correct, forKey: .correct); try c.encode(total, forKey: .total); try c.encode(accuracy, forKey: .accuracy)
    }
}

/// The base model's scores (no adapter).
public struct RankSweepBaseline: Sendable, Encodable {
    public let validLoss: Float
    public let exactMatch: RankSweepExactMatch?

    enum CodingKeys: String, CodingKey { case validLoss = "valid_loss", exactMatch = "exact_match" }
}

/// One run of the sweep.
public struct RankSweepRun: Sendable, Encodable {
    public let rank: Int
    /// lora_alpha and the scale s applied to B·A.
    public let alpha: Double
    public let scale: Double
    public let trainableParameters: Int
    /// Training loss of every step.
    public let trainLosses: [Float]
    /// Mean cross-entropy on the valid split after training.
    public let validLoss: Float
    public var validPerplexity: Double { exp(Double(validLoss)) }
    public let exactMatch: RankSweepExactMatch?
    /// Mean over modules of ‖A_final − A_init‖_F / ‖A_init‖_F: how much of A is learnt rather than its random start.
    public let meanRelativeChangeOfA: Double
    /// Wall time of training and scoring.
    public let seconds: Double
    /// Where the adapter (PEFT format) and metrics.jsonl are.
    public let adapterDirectory: String

    enum CodingKeys: String, CodingKey {
        case rank, alpha, scale, seconds
        case trainableParameters = "trainable_parameters", trainLosses = "train_losses", validLoss = "valid_loss"
        case validPerplexity = "valid_perplexity", exactMatch = "exact_match", meanRelativeChangeOfA = "mean_relative_change_of_a"
        case adapterDirectory = "adapter_directory"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(rank, forKey: .rank); try c.encode(alpha, forKey: .alpha); try c.encode(scale, forKey: .scale)
        try c.encode(trainableParameters, forKey: .trainableParameters); try c.encode(trainLosses, forKey: .trainLosses)
        try c.encode(validLoss, forKey: .validLoss); try c.encode(validPerplexity, forKey: .validPerplexity)
        try c.encode(exactMatch, forKey: .exactMatch); try c.encode(meanRelativeChangeOfA, forKey: .meanRelativeChangeOfA)
        try c.encode((seconds * 10).rounded() / 10, forKey: .seconds); try c.encode(adapterDirectory, forKey: .adapterDirectory)
    }
}

/// φ(i, j) of one module type (q_proj, …) averaged over the layers that adapt it.
public struct ModuleTypeSimilarity: Sendable, Encodable {
    /// The last component of the module paths (`q_proj`).
    public let moduleType: String
    /// How many modules were averaged.
    public let moduleCount: Int
    /// Dimension n of the compared space (in for a-right, out for delta-left).
    public let dimension: Int
    /// meanPhi[i − 1][j − 1] = mean over the modules of φ(i, j); [r_low, r_high].
    public let meanPhi: [[Double]]
    /// Smallest and largest φ(1, 1) over the modules.
    public let topOverlapRange: [Double]

    /// Mean φ(1, 1): squared cosine between the two runs' top directions.
    public var meanTopOverlap: Double { meanPhi[0][0] }
    /// Mean φ(1, r_high): how much of the low-rank run's top direction lies in the high-rank run's whole subspace.
    public var meanTopInHigh: Double { meanPhi[0].last ?? 0 }
    /// Mean φ(r_low, r_high).
    public var meanLowInHigh: Double { meanPhi.last?.last ?? 0 }
    /// What independent random subspaces give for φ(i, j): max(i, j)/n.
    public func randomExpectation(i: Int, j: Int) -> Double { Double(max(i, j)) / Double(dimension) }

    /// Groups `modules` by their last path component and averages φ; modules of one type must share ranks and n.
    public static func byType(_ modules: [ModuleSimilarity]) -> [ModuleTypeSimilarity] {
        let groups = Dictionary(grouping: modules) { String($0.module.split(separator: ".").last ?? "") }
        return groups.keys.sorted().compactMap { type in
            let members = groups[type]!
            guard let first = members.first, !first.phi.isEmpty,
                  members.allSatisfy({ $0.phi.count == first.phi.count && $0.phi[0].count == first.phi[0].count && $0.dimension == first.dimension })
            else { return nil }
            var mean = first.phi.map { $0.map { _ in 0.0 } }
            for m in members { for i in mean.indices { for j in mean[i].indices { mean[i][j] += m.phi[i][j] / Double(members.count) } } }
            let tops = members.map(\.topDirectionOverlap)
            return ModuleTypeSimilarity(moduleType: type, moduleCount: members.count, dimension: first.dimension,
                                        meanPhi: mean, topOverlapRange: [tops.min()!, tops.max()!])
        }
    }

    enum CodingKeys: String, CodingKey {
        case moduleType = "module_type", moduleCount = "module_count", dimension, meanPhi = "mean_phi"
        case topOverlapRange = "top_overlap_range", meanTopOverlap = "mean_top_overlap", meanTopInHigh = "mean_top_in_high"
        case meanLowInHigh = "mean_low_in_high", randomTopOverlap = "random_top_overlap", randomTopInHigh = "random_top_in_high"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        let high = meanPhi[0].count
        try c.encode(moduleType, forKey: .moduleType); try c.encode(moduleCount, forKey: .moduleCount)
        try c.encode(dimension, forKey: .dimension); try c.encode(meanPhi, forKey: .meanPhi)
        try c.encode(topOverlapRange, forKey: .topOverlapRange); try c.encode(meanTopOverlap, forKey: .meanTopOverlap)
        try c.encode(meanTopInHigh, forKey: .meanTopInHigh); try c.encode(meanLowInHigh, forKey: .meanLowInHigh)
        try c.encode(randomExpectation(i: 1, j: 1), forKey: .randomTopOverlap)
        try c.encode(randomExpectation(i: 1, j: high), forKey: .randomTopInHigh)
    }
}

/// φ between the adapters of two ranks, both ways the Analysis module compares subspaces.
public struct RankSweepSimilarity: Sendable, Encodable {
    /// [r_low, r_high].
    public let ranks: [Int]
    /// Right singular vectors of A (the paper's Figure 3).
    public let aRight: AdapterSimilarity
    /// Left singular vectors of ΔW = s·B·A (B starts at zero, so these directions are learnt from scratch).
    public let deltaLeft: AdapterSimilarity

    /// a-right φ averaged per module type.
    public var aRightByType: [ModuleTypeSimilarity] { ModuleTypeSimilarity.byType(aRight.modules) }
    /// delta-left φ averaged per module type.
    public var deltaLeftByType: [ModuleTypeSimilarity] { ModuleTypeSimilarity.byType(deltaLeft.modules) }

    enum CodingKeys: String, CodingKey {
        case ranks, aRight = "a_right", deltaLeft = "delta_left", aRightByType = "a_right_by_type", deltaLeftByType = "delta_left_by_type"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(ranks, forKey: .ranks); try c.encode(aRight, forKey: .aRight); try c.encode(deltaLeft, forKey: .deltaLeft)
        try c.encode(aRightByType, forKey: .aRightByType); try c.encode(deltaLeftByType, forKey: .deltaLeftByType)
    }
}

/// Everything a sweep measured.
public struct RankSweepResult: Sendable, Encodable {
    public let ranks: [Int]
    public let targets: String
    /// The scaling rule, in words.
    public let scaling: String
    public let iterations: Int
    public let batchSize: Int
    public let learningRate: Double
    public let seed: UInt64
    public let base: RankSweepBaseline?
    public let runs: [RankSweepRun]
    /// nil when fewer than two ranks were swept.
    public let similarity: RankSweepSimilarity?

    enum CodingKeys: String, CodingKey {
        case ranks, targets, scaling, iterations, seed, base, runs, similarity
        case batchSize = "batch_size", learningRate = "learning_rate"
    }

    /// Per r: α, s, parameters, final train loss, valid loss and perplexity, exact match, A's change, time.
    public func table() -> String {
        var t = TextTable(header: ["r", "alpha", "scale", "params", "train loss (last 5)", "valid loss", "perplexity",
                                   "exact match", "|ΔA|/|A0|", "seconds"], numericColumns: Set(0...9))
        func match(_ m: RankSweepExactMatch?) -> String {
            m.map { String(format: "%d/%d (%.1f%%)", $0.correct, $0.total, 100 * $0.accuracy) } ?? "-"
        }
        if let base {
            t.append(["base", "-", "-", "0", "-", String(format: "%.4f", base.validLoss), String(format: "%.3f", exp(Double(base.validLoss))),
                      match(base.exactMatch), "-", "-"])
        }
        for run in runs {
            let tail = run.trainLosses.suffix(5)
            t.append(["\(run.rank)", formatShort(run.alpha), formatShort(run.scale), "\(run.trainableParameters)",
                      tail.isEmpty ? "-" : String(format: "%.4f", tail.reduce(0, +) / Float(tail.count)),
                      String(format: "%.4f", run.validLoss), String(format: "%.3f", run.validPerplexity), match(run.exactMatch),
                      String(format: "%.3f", run.meanRelativeChangeOfA), String(format: "%.0f", run.seconds)])
        }
        var out = "rank sweep: \(iterations) steps × batch \(batchSize), lr \(learningRate), seed \(seed), targets \(targets), \(scaling)\n"
        out += t.render()
        if let similarity { out += "\n" + similarity.table() }
        return out
    }

    /// Writes the plots into `directory`: train-loss curves per r, and mean φ heatmaps per module type for both
    /// subspace choices (full r_low × r_high grid and the r_low × r_low corner, like the paper's Figure 3).
    /// Returns the files written.
    @discardableResult
    public func writePlots(to directory: URL) throws -> [URL] {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var written: [URL] = []
        var losses = LinePlot(title: "Training loss per step", xLabel: "step", yLabel: "loss",
                              series: runs.map { LineSeries(name: "r = \($0.rank)", y: $0.trainLosses.map(Double.init)) })
        losses.integerXTicks = true
        let lossURL = directory.appendingPathComponent("train-loss.svg")
        try losses.write(to: lossURL); written.append(lossURL)
        guard let similarity else { return written }
        let (low, high) = (similarity.ranks[0], similarity.ranks[1])
        for (mode, types) in [("a-right", similarity.aRightByType), ("delta-left", similarity.deltaLeftByType)] {
            for type in types {
                for corner in [false, true] where !corner || high > low {
                    let values = corner ? type.meanPhi.map { Array($0.prefix(low)) } : type.meanPhi
                    var map = Heatmap(title: "φ(i, j) of \(type.moduleType), \(mode): r = \(low) vs r = \(high), mean of \(type.moduleCount) layers",
                                      values: values, rowLabels: (1...values.count).map(String.init),
                                      columnLabels: (1...values[0].count).map(String.init))
                    map.xLabel = "j (r = \(high))"; map.yLabel = "i (r = \(low))"; map.colorBarLabel = "φ"
                    map.valueRange = 0...1
                    map.annotatesCells = values.count <= 12 && values[0].count <= 12
                    let url = directory.appendingPathComponent("phi-\(mode)-\(type.moduleType)\(corner ? "-corner" : "").svg")
                    try map.write(to: url); written.append(url)
                }
            }
        }
        return written
    }
}

extension RankSweepSimilarity {
    /// Per module type and subspace choice: φ(1,1), φ(1, r_high), φ(r_low, r_high) (means over layers) with the
    /// random-subspace levels max(i, j)/n beside them.
    public func table() -> String {
        let (low, high) = (ranks[0], ranks[1])
        var t = TextTable(header: ["subspace", "module", "layers", "n", "phi(1,1)", "min..max", "random",
                                   "phi(1,\(high))", "random", "phi(\(low),\(high))", "random"], numericColumns: Set(2...10))
        for (mode, types) in [("a-right", aRightByType), ("delta-left", deltaLeftByType)] {
            for m in types {
                t.append([mode, m.moduleType, "\(m.moduleCount)", "\(m.dimension)", String(format: "%.3f", m.meanTopOverlap),
                          String(format: "%.2f..%.2f", m.topOverlapRange[0], m.topOverlapRange[1]),
                          String(format: "%.3f", m.randomExpectation(i: 1, j: 1)), String(format: "%.3f", m.meanTopInHigh),
                          String(format: "%.3f", m.randomExpectation(i: 1, j: high)), String(format: "%.3f", m.meanLowInHigh),
                          String(format: "%.3f", m.randomExpectation(i: low, j: high))])
            }
        }
        return "subspace similarity φ(i, j) between the r = \(low) and r = \(high) adapters (mean over layers)\n" + t.render()
    }
}
