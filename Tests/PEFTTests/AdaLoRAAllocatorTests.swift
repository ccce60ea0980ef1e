import XCTest
import TensorCore
import Autograd
import PEFT
import TestSupport

final class AdaLoRAAllocatorTests: XCTestCase {
    /// `n` random modules of rank initR ([out, in] = [5, 4]) and an allocator over them.
    func makeAllocator(_ config: AdaLoRAConfig, modules n: Int, seed: UInt64 = 1, targetBudget: Int? = nil) throws
        -> (RankAllocator, [(path: String, branch: AdaLoRABranch)])
    {
        var rng = RandomGenerator(seed: seed)
        let modules = try (0..<n).map { i -> (path: String, branch: AdaLoRABranch) in
            ("layers.\(i).q", try AdaLoRABranch.initialize(outFeatures: 5, inFeatures: 4, rank: config.initR, scaling: 8, dropout: 0,
                                                           random: true, rng: &rng, module: "layers.\(i).q"))
        }
        return (try RankAllocator(modules: modules, config: config, targetBudget: targetBudget), modules)
    }

    func nonZeroE(_ modules: [(path: String, branch: AdaLoRABranch)]) -> Int {
        modules.reduce(0) { $0 + $1.branch.e.value.array.filter { $0 != 0 }.count }
    }

    /// PEFT's budget_schedule: b(t) = int((b0 − bT)·(1 − (t − tinit)/(T − tfinal − tinit))³ + bT) in double precision.
    /// Expected values computed by hand with Python's arithmetic.
    func testBudgetScheduleMatchesPEFTIntegerArithmetic() throws {
        // The fixture run: 4 modules, init_r 6 → b0 24, target_r 2 → bT 8, tinit 2, tfinal 2, T 8 (steps.json: 14, 10, 8).
        let (fixture, _) = try makeAllocator(AdaLoRAConfig(initR: 6, targetR: 2, tinit: 2, tfinal: 2, totalStep: 8), modules: 4)
        XCTAssertEqual(fixture.initialBudget, 24); XCTAssertEqual(fixture.targetBudget, 8)
        XCTAssertEqual((0..<9).map { fixture.budget(at: $0).budget }, [24, 24, 24, 14, 10, 8, 8, 8, 8])
        XCTAssertEqual((0..<9).map { fixture.budget(at: $0).mask }, [false, false, false, true, true, true, true, true, true])
        // A long run: 3 modules, init_r 12 → 36, target_r 8 → 24, tinit 200, tfinal 1000, T 5000, deltaT 10.
        let (long, _) = try makeAllocator(AdaLoRAConfig(initR: 12, targetR: 8, tinit: 200, tfinal: 1000, deltaT: 10, totalStep: 5000), modules: 3)
        let expected: [(Int, Int, Bool)] = [(0, 36, false), (200, 36, false), (201, 35, false), (210, 35, true), (1000, 29, true),
                                            (2000, 25, true), (2003, 25, false), (3000, 24, true), (3999, 24, false), (4000, 24, true),
                                            (4001, 24, true), (4999, 24, true)]
        for (step, budget, mask) in expected {
            XCTAssertEqual(long.budget(at: step).budget, budget, "step \(step)")
            XCTAssertEqual(long.budget(at: step).mask, mask, "step \(step)")
        }
        // Truncation, not rounding: 1 − (t − 0)/(10) at t = 1 gives 0.729·(20 − 4) + 4 = 15.664 → 15.
        let (small, _) = try makeAllocator(AdaLoRAConfig(initR: 5, targetR: 1, tinit: 0, tfinal: 0, totalStep: 10), modules: 4)
        XCTAssertEqual((0..<10).map { small.budget(at: $0).budget }, [20, 15, 12, 9, 7, 6, 5, 4, 4, 4])
    }

    /// Importance: Ī ← β1Ī + (1−β1)|p∇p|, Ū ← β2Ū + (1−β2)|I − Ī| (new Ī), s = ĪŪ; triplet score =
    /// s(E_i) + mean_j s(A_ij) + mean_j s(B_ji). Checked against a Double reference over two updates.
    func testImportanceEMAsAndTripletScores() throws {
        var config = AdaLoRAConfig(initR: 3, targetR: 1, tinit: 0, tfinal: 0, totalStep: 10)
        config.beta1 = 0.7; config.beta2 = 0.6
        let (allocator, modules) = try makeAllocator(config, modules: 2)
        var rng = RandomGenerator(seed: 9)
        var refS: [[[Double]]] = modules.map { m in [m.branch.a, m.branch.e, m.branch.b].map { [Double](repeating: 0, count: $0.value.count) } }
        var refU = refS
        for _ in 0..<2 {
            fillGradients(modules, rng: &rng)
            try allocator.updateImportance()
            for (i, m) in modules.enumerated() {
                for (j, p) in [m.branch.a, m.branch.e, m.branch.b].enumerated() {
                    for k in 0..<p.value.count {
                        let ipt = abs(Double(p.value[flat: k]) * Double(p.grad![flat: k]))
                        refS[i][j][k] = 0.7 * refS[i][j][k] + 0.3 * ipt
                        refU[i][j][k] = 0.6 * refU[i][j][k] + 0.4 * abs(ipt - refS[i][j][k])
                    }
                }
            }
        }
        let scores = allocator.tripletScores()
        for i in 0..<2 {
            for t in 0..<3 {
                func s(_ j: Int, _ k: Int) -> Double { refS[i][j][k] * refU[i][j][k] }
                let a = (0..<4).map { s(0, t * 4 + $0) }.reduce(0, +) / 4
                let b = (0..<5).map { s(2, $0 * 3 + t) }.reduce(0, +) / 5
                let expected = s(1, t) + a + b
                XCTAssertEqual(Double(scores[i][t]), expected, accuracy: 1e-5 * expected + 1e-9)
            }
        }
    }

    /// After a masking step the number of non-zero E entries equals the budget, and the zeroed triplets are
    /// exactly the lowest-scoring ones (random scores: no ties).
    func testMaskingKeepsExactlyTheBudgetOfTopScores() throws {
        let (allocator, modules) = try makeAllocator(AdaLoRAConfig(initR: 6, targetR: 2, tinit: 0, tfinal: 0, totalStep: 20), modules: 5)
        var rng = RandomGenerator(seed: 3)
        fillGradients(modules, rng: &rng)
        try allocator.updateImportance()
        let scores = allocator.tripletScores().flatMap { $0 }
        XCTAssertEqual(Set(scores).count, 30)
        for budget in [29, 21, 10, 10] {
            let pattern = try allocator.maskToBudget(budget)
            XCTAssertEqual(nonZeroE(modules), budget)
            XCTAssertEqual(pattern.values.reduce(0) { $0 + $1.filter { $0 }.count }, budget)
            let kept = modules.flatMap { m in pattern[RankAllocator.patternKey(m.path)]! }
            let cut = scores.sorted()[30 - budget - 1]
            XCTAssertEqual(kept, scores.map { $0 > cut })
        }
    }

    /// k = b0 − budget ≤ 0 masks nothing (PEFT's kthvalue would raise; target_r == init_r is rejected by the config,
    /// so the guard is exercised on the allocator directly).
    func testKthValueGuard() throws {
        let (allocator, modules) = try makeAllocator(AdaLoRAConfig(initR: 4, targetR: 2, totalStep: 10), modules: 3)
        var rng = RandomGenerator(seed: 4)
        fillGradients(modules, rng: &rng)
        try allocator.updateImportance()
        let before = modules.map { $0.branch.e.value }
        for budget in [12, 15] {
            let pattern = try allocator.maskToBudget(budget)
            XCTAssertEqual(modules.map { $0.branch.e.value }, before)
            XCTAssertTrue(pattern.values.allSatisfy { $0 == [true, true, true, true] })
        }
        XCTAssertThrowsError(try makeAllocator(AdaLoRAConfig(initR: 4, targetR: 2, totalStep: 10), modules: 3, targetBudget: 12)) { e in
            XCTAssertEqual(e as? AdaLoRAError, .invalidBudget(target: 12, initial: 12))
        }
        XCTAssertThrowsError(try makeAllocator(AdaLoRAConfig(initR: 4, targetR: 2, totalStep: 10), modules: 3, targetBudget: 0))
    }

    /// A whole schedule: budgets follow b(t) while masking, the pattern is fixed at T − tfinal with total b(T)
    /// (= target_r × n), and re-applied every later step even after the optimizer regrows E.
    func testFinalPatternIsFixedAndReapplied() throws {
        let config = AdaLoRAConfig(initR: 6, targetR: 2, tinit: 2, tfinal: 4, deltaT: 2, totalStep: 16)
        let (allocator, modules) = try makeAllocator(config, modules: 4)
        var rng = RandomGenerator(seed: 6)
        var fixed: [String: [Bool]]?
        for step in 0..<16 {
            // Simulate an optimizer step: every E entry moves (masked ones regrow).
            for (_, b) in modules { b.e.value.addScaled(rng.normal([6, 1], std: 0.05)) }
            fillGradients(modules, rng: &rng)
            let report = try allocator.update(step: step)
            XCTAssertEqual(report.budget, allocator.budget(at: step).budget)
            switch step {
            case 0...2:
                XCTAssertFalse(report.masked); XCTAssertNil(allocator.config.rankPattern); XCTAssertEqual(report.totalRank, 24)
            case 3, 5, 7, 9, 11:
                XCTAssertFalse(report.masked, "deltaT = 2: odd steps do not mask")
            case 4, 6, 8, 10:
                XCTAssertTrue(report.masked); XCTAssertEqual(report.phase, .reduction)
                XCTAssertEqual(nonZeroE(modules), report.budget); XCTAssertEqual(report.totalRank, report.budget)
            case 12:
                XCTAssertEqual(report.phase, .fixing); XCTAssertEqual(report.budget, 8)
                XCTAssertEqual(nonZeroE(modules), 8); XCTAssertEqual(report.totalRank, 8)
                fixed = allocator.config.rankPattern
            default:
                XCTAssertEqual(report.phase, .final)
                XCTAssertEqual(allocator.config.rankPattern, fixed, "pattern stays fixed at step \(step)")
                XCTAssertEqual(nonZeroE(modules), 8)
                for m in modules {
                    let keep = fixed![RankAllocator.patternKey(m.path)]!
                    for t in 0..<6 { XCTAssertEqual(m.branch.e.value[flat: t] != 0, keep[t]) }
                }
            }
        }
        XCTAssertEqual(allocator.currentRanks.reduce(0) { $0 + $1.rank }, 8)
        // Budgets while reducing (b0 24, bT 8, c = 1 − (t − 2)/10): t=4 → 16·0.512+8 = 16.19, 6 → 11.456, 8 → 9.024, 10 → 8.128.
        XCTAssertEqual([4, 6, 8, 10].map { allocator.budget(at: $0).budget }, [16, 11, 9, 8])
    }

    func testMissingGradientIsATypedErrorAndChangesNothing() throws {
        let (allocator, modules) = try makeAllocator(AdaLoRAConfig(initR: 3, targetR: 1, totalStep: 10), modules: 2)
        var rng = RandomGenerator(seed: 1)
        fillGradients(modules, rng: &rng)
        modules[1].branch.b.grad = nil
        XCTAssertThrowsError(try allocator.update(step: 1)) { e in
            XCTAssertEqual(e as? AdaLoRAError, .missingGradient(parameter: "layers.1.q.lora_B"))
            XCTAssertTrue("\(e)".contains("after optimizer.step()"))
        }
        XCTAssertEqual(allocator.tripletScores().flatMap { $0 }, [Float](repeating: 0, count: 6))
        modules[0].branch.e.grad = Tensor([.nan, 0, 0], shape: [3, 1])
        modules[1].branch.b.grad = rng.normal([5, 3])
        XCTAssertThrowsError(try allocator.update(step: 1)) { e in XCTAssertEqual(e as? AdaLoRAError, .nonFiniteImportance(module: "layers.0.q")) }
    }

    /// The allocator found by adapter name on a model, and the hook the trainer calls.
    func testModelAllocatorAndTrainingHook() throws {
        let model = try LlamaProjections()
        var rng = RandomGenerator(seed: 2)
        let config = AdaLoRAConfig(initR: 4, targetR: 2, tinit: 0, tfinal: 1, totalStep: 4, targetModules: .names(["q_proj", "v_proj"]))
        try model.addAdaLoRA(config, rng: &rng)
        XCTAssertThrowsError(try RankAllocator(model: model, adapter: "other", config: config)) { e in XCTAssertTrue("\(e)".contains("other")) }
        let allocator = try RankAllocator(model: model, config: config)
        XCTAssertEqual(allocator.modules.map(\.path), ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                                       "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"])
        let hook: AdapterTrainingHook = allocator
        XCTAssertNotNil(hook.regularizationLoss())
        fillGradients(allocator.modules, rng: &rng)
        let note = try XCTUnwrap(try hook.afterOptimizerStep(1))
        XCTAssertTrue(note.hasPrefix("budget 10/16 (reduction), ranks"), note)  // c = 2/3: 8·0.296 + 8 = 10.37
    }
}
