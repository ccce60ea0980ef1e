// AdaLoRA's budget allocation (spec §3.3), with PEFT's order of operations:
//   after each optimizer step t (gradients still present):
//     t <  T − tfinal: importance EMAs  Ī ← β1·Ī + (1−β1)·|p⊙∇p|,  Ū ← β2·Ū + (1−β2)·|I − Ī|,  score = Ī⊙Ū;
//                      if the schedule says so, zero the E entries whose triplet score ≤ k-th smallest, k = b(0) − b(t)
//     t == T − tfinal: final masking at b(T) with the last scores; the pattern is fixed, the EMAs reset
//     t >  T − tfinal: the fixed pattern is re-applied (E regrows under the optimizer between steps)
import Foundation
import TensorCore
import Autograd

/// What one allocator step did, for progress lines and logs.
public struct RankAllocation: Sendable {
    public let step: Int
    public let phase: AdaLoRAPhase
    /// b(t) from the cubic schedule.
    public let budget: Int
    /// Whether E entries were zeroed at this step.
    public let masked: Bool
    /// Kept triplets per module path, in module order (init ranks before the first masking).
    public let ranks: [RankAllocator.ModuleRank]
    /// Σ ranks.
    public var totalRank: Int { ranks.reduce(0) { $0 + $1.rank } }
}

public final class RankAllocator {
    /// A module's current rank.
    public struct ModuleRank: Sendable, Equatable {
        public let module: String
        public let rank: Int
        /// A module path and its kept triplets.
        public init(module: String, rank: Int) { self.module = module; self.rank = rank }
    }

    /// The config whose `rankPattern` the allocator keeps current (PEFT updates its config in place); save this one.
    public internal(set) var config: AdaLoRAConfig
    /// The adapted modules (paths and branches) in model order.
    public let modules: [(path: String, branch: AdaLoRABranch)]
    /// b(0) = Σ initial ranks; b(T) = target_r × modules unless overridden.
    public let initialBudget: Int
    public let targetBudget: Int

    /// EMAs of sensitivity (Ī) and uncertainty (Ū) per module, for [A, E, B]; nil until the first update.
    struct Importance { var sensitivity: Tensor; var uncertainty: Tensor }
    var importance: [[Importance]]?

    /// An allocator over every AdaLoRA branch named `adapter` in the model. `targetBudget` overrides
    /// target_r × modules (a LoRAKit extension for totals that are not a multiple of the module count).
    public convenience init(model: AdaptableModel, adapter: String = "default", config: AdaLoRAConfig, targetBudget: Int? = nil) throws {
        let modules = model.adaptedLinears.compactMap { layer in
            (layer.adapter(named: adapter) as? AdaLoRABranch).map { (path: layer.path, branch: $0) }
        }
        guard !modules.isEmpty else { throw AdaLoRAError.noAdaLoRAModules(adapter: adapter) }
        try self.init(modules: modules, config: config, targetBudget: targetBudget)
    }

    /// An allocator over explicit (path, branch) pairs.
    public init(modules: [(path: String, branch: AdaLoRABranch)], config: AdaLoRAConfig, targetBudget: Int? = nil) throws {
        try config.validate()
        guard !modules.isEmpty else { throw AdaLoRAError.noAdaLoRAModules(adapter: "?") }
        self.config = config
        self.modules = modules
        initialBudget = modules.reduce(0) { $0 + $1.branch.rank }
        let target = targetBudget ?? config.targetR * Set(modules.map(\.path)).count
        guard target >= 1, target < initialBudget else { throw AdaLoRAError.invalidBudget(target: target, initial: initialBudget) }
        self.targetBudget = target
    }

    /// PEFT's `budget_schedule`: (b(t), whether step t masks). Integer semantics: `int()` truncation of
    /// (b0 − bT)·c³ + bT with c = 1 − (t − tinit)/(T − tfinal − tinit) in double precision.
    public func budget(at step: Int) -> (budget: Int, mask: Bool) {
        let total = config.totalStep ?? 0
        if step <= config.tinit { return (initialBudget, false) }
        if step > total - config.tfinal { return (targetBudget, true) }
        let c = 1 - Double(step - config.tinit) / Double(total - config.tfinal - config.tinit)
        let b = Double(initialBudget - targetBudget) * Foundation.pow(c, 3) + Double(targetBudget)
        return (Int(b), step % config.deltaT == 0)
    }

    /// Call after every optimizer step, before the gradients are cleared. `step` is the 0-based index of the
    /// step just taken (PEFT's `global_step`).
    @discardableResult
    public func update(step: Int) throws -> RankAllocation {
        let finalStep = config.finalStep
        var masked = false
        let phase = config.phase(at: step)
        let budget = self.budget(at: step)
        if step < finalStep {
            try updateImportance()
            if budget.mask {
                config.rankPattern = try maskToBudget(budget.budget)
                masked = true
            }
        } else if step == finalStep {
            if importance == nil { try updateImportance() }  // only when the allocator was attached late
            config.rankPattern = try maskToBudget(targetBudget)
            importance = nil  // PEFT's reset_ipt()
            masked = true
        } else if let pattern = config.rankPattern {
            applyRankPattern(pattern)
            masked = true
        }
        return RankAllocation(step: step, phase: phase, budget: budget.budget, masked: masked, ranks: currentRanks)
    }

    /// Kept triplets per module: from the current pattern, else the physical ranks.
    public var currentRanks: [ModuleRank] {
        modules.map { m in
            ModuleRank(module: m.path, rank: config.rankPattern?[Self.patternKey(m.path)]?.filter { $0 }.count ?? m.branch.rank)
        }
    }

    /// `<module>.lora_E`, the key PEFT uses in rank_pattern.
    public static func patternKey(_ path: String) -> String { path + ".lora_E" }

    /// Folds |p ⊙ ∇p| of A, E and B of every module into the EMAs (PEFT's `update_ipt`).
    public func updateImportance() throws {
        let b1 = Float(config.beta1), c1 = Float(1 - config.beta1)
        let b2 = Float(config.beta2), c2 = Float(1 - config.beta2)
        // Check every gradient first, so a failed call changes nothing.
        for m in modules where m.branch.rank > 0 {
            for (j, p) in [m.branch.a, m.branch.e, m.branch.b].enumerated() where p.grad == nil {
                throw AdaLoRAError.missingGradient(parameter: p.name ?? "\(m.path) \(["lora_A", "lora_E", "lora_B"][j])")
            }
        }
        var state = importance ?? modules.map { m in
            [m.branch.a, m.branch.e, m.branch.b].map { Importance(sensitivity: Tensor(zeros: $0.shape), uncertainty: Tensor(zeros: $0.shape)) }
        }
        importance = nil  // unique ownership while the buffers are updated in place
        for (i, m) in modules.enumerated() where m.branch.rank > 0 {
            for (j, p) in [m.branch.a, m.branch.e, m.branch.b].enumerated() {
                let g = p.grad!
                var entry = state[i][j]
                state[i][j] = Importance(sensitivity: Tensor(zeros: []), uncertainty: Tensor(zeros: []))  // entry uniquely owned
                defer { state[i][j] = entry }
                p.value.withUnsafeBufferPointer { pv in g.withUnsafeBufferPointer { pg in
                entry.sensitivity.withUnsafeMutableBufferPointer { ps in
                entry.uncertainty.withUnsafeMutableBufferPointer { pu in
                    let v = pv.baseAddress!, gr = pg.baseAddress!, s = ps.baseAddress!, u = pu.baseAddress!
                    for k in 0..<pv.count {
                        let ipt = abs(v[k] * gr[k])
                        s[k] = b1 * s[k] + c1 * ipt
                        u[k] = b2 * u[k] + c2 * abs(ipt - s[k])
                    }
                } } } }
            }
        }
        importance = state
    }

    /// Triplet scores per module: S_i = s(E_i) + (mean_j s(A_ij) + mean_j s(B_ji)), with s = Ī ⊙ Ū.
    /// Zeros before the first update.
    public func tripletScores() -> [[Float]] {
        modules.enumerated().map { i, m in
            let r = m.branch.rank, n = m.branch.inFeatures, out = m.branch.outFeatures
            guard let state = importance?[i], r > 0 else { return [Float](repeating: 0, count: r) }
            var scores = [Float](repeating: 0, count: r)
            state[0].sensitivity.withUnsafeBufferPointer { sa in state[0].uncertainty.withUnsafeBufferPointer { ua in
            state[1].sensitivity.withUnsafeBufferPointer { se in state[1].uncertainty.withUnsafeBufferPointer { ue in
            state[2].sensitivity.withUnsafeBufferPointer { sb in state[2].uncertainty.withUnsafeBufferPointer { ub in
                var columnB = [Double](repeating: 0, count: r)  // B: mean over rows of its [out, r] score
                for o in 0..<out { for c in 0..<r { columnB[c] += Double(sb[o * r + c] * ub[o * r + c]) } }
                for t in 0..<r {
                    var rowA = 0.0  // A: mean over the columns of row t of its [r, in] score
                    for j in 0..<n { rowA += Double(sa[t * n + j] * ua[t * n + j]) }
                    let ab = Float(rowA / Double(n)) + Float(columnB[t] / Double(out))
                    scores[t] = se[t] * ue[t] + ab
                }
            } } } } } }
            return scores
        }
    }

    /// Zeros E wherever the triplet score is ≤ the k-th smallest score, k = b(0) − budget (PEFT's
    /// `mask_to_budget`; ties at the threshold mask more than k). k ≤ 0 masks nothing. Returns the kept pattern.
    @discardableResult
    public func maskToBudget(_ budget: Int) throws -> [String: [Bool]] {
        let scores = tripletScores()
        for (i, s) in scores.enumerated() where !s.allSatisfy(\.isFinite) { throw AdaLoRAError.nonFiniteImportance(module: modules[i].path) }
        let k = initialBudget - budget
        var threshold = -Float.infinity  // k ≤ 0: nothing is ≤ −∞, everything is kept
        if k > 0 {
            let all = scores.flatMap { $0 }.sorted()
            threshold = all[min(k, all.count) - 1]
        }
        var pattern: [String: [Bool]] = [:]
        for (i, m) in modules.enumerated() {
            let keep = scores[i].map { $0 > threshold }
            m.branch.e.value.withUnsafeMutableBufferPointer { e in for t in 0..<keep.count where !keep[t] { e[t] = 0 } }
            pattern[Self.patternKey(m.path)] = keep
        }
        return pattern
    }

    /// Re-zeros the E entries a pattern drops (PEFT's `mask_using_rank_pattern`). Modules without an entry are kept.
    public func applyRankPattern(_ pattern: [String: [Bool]]) {
        for m in modules {
            guard let keep = pattern[Self.patternKey(m.path)], keep.count == m.branch.rank else { continue }
            m.branch.e.value.withUnsafeMutableBufferPointer { e in for t in 0..<keep.count where !keep[t] { e[t] = 0 } }
        }
    }

    /// Forgets the importance EMAs (PEFT's `reset_ipt`).
    public func resetImportance() { importance = nil }

    /// γ · orthogonal regulariser over every module's A and B (add it to the loss before backward).
    public func regularizationLoss(form: OrthogonalRegularizationForm = .peft) -> Variable {
        orthogonalRegularization(modules.map(\.branch), weight: Float(config.orthRegWeight), form: form)
    }
}

extension RankAllocator: AdapterTrainingHook {
    /// γ · R(A, B) in PEFT's form, or nil when orth_reg_weight is 0.
    public func regularizationLoss() -> Variable? {
        config.orthRegWeight > 0 ? regularizationLoss(form: .peft) : nil
    }

    /// Runs `update(step:)`; the note reads e.g. "budget 14/24 (reduction), ranks 2 6 0 6".
    public func afterOptimizerStep(_ step: Int) throws -> String? {
        let a = try update(step: step)
        return "budget \(a.budget)/\(initialBudget) (\(a.phase.rawValue)), ranks " + a.ranks.map { String($0.rank) }.joined(separator: " ")
    }
}
