import XCTest
import TensorCore
import Autograd
import LinearAlgebra
import PEFT
import TestSupport

final class AdaLoRALayerTests: XCTestCase {
    let base = Fixtures.url("peft/base_mlp/model.safetensors")

    /// TestAdaLoraInitialization::test_adalora_default_init_identity: E = 0, A and B ~ N(0, 0.02²).
    func testDefaultInitIsIdentityWithSpecStatistics() throws {
        let model = try FixtureMLP(file: base)
        var rng = RandomGenerator(seed: 3)
        let x = rng.normal([5, 16])
        let before = model(x).value
        let config = AdaLoRAConfig(initR: 12, targetR: 8, totalStep: 100, loraAlpha: 32, targetModules: .names(["0", "2"]))
        XCTAssertEqual(try model.addAdaLoRA(config, rng: &rng), ["0", "2"])
        XCTAssertEqual(model(x).value, before)
        let branch = try XCTUnwrap(model.first.adapter(named: "default") as? AdaLoRABranch)
        XCTAssertEqual(branch.a.shape, [12, 16]); XCTAssertEqual(branch.e.shape, [12, 1]); XCTAssertEqual(branch.b.shape, [32, 12])
        XCTAssertTrue(branch.e.value.array.allSatisfy { $0 == 0 })
        for t in [branch.a.value, branch.b.value] {
            let v = t.array, std = (v.map { $0 * $0 }.reduce(0, +) / Float(v.count)).squareRoot()
            XCTAssertEqual(std, 0.02, accuracy: 0.003)  // 192 and 384 draws
        }
        XCTAssertEqual(branch.scaling, 32)
        XCTAssertEqual(branch.ranknum, 12)
        XCTAssertEqual(branch.factor, 32 / Float(12.00001), accuracy: 1e-7)
        XCTAssertEqual(model.adapterParameters("default").map(\.0), ["0.lora_A", "0.lora_E", "0.lora_B", "2.lora_A", "2.lora_E", "2.lora_B"])
    }

    /// Forward is W x + b + B((A x) ⊙ E)·α/(ranknum + 1e-5), and merge/unmerge reproduce it (spec §3.2).
    func testForwardMatchesFormulaAndMergeRoundTrips() throws {
        let model = try FixtureMLP(file: base)
        var rng = RandomGenerator(seed: 4)
        var config = AdaLoRAConfig(initR: 4, targetR: 2, totalStep: 10, loraAlpha: 8, targetModules: .names(["0"]))
        config.lora.initialization = .random
        try model.addAdaLoRA(config, rng: &rng)
        let branch = try XCTUnwrap(model.first.adapter(named: "default") as? AdaLoRABranch)
        XCTAssertGreaterThan(branch.e.value.array.map(abs).max()!, 0.1)  // init_lora_weights=false: E random too
        let x = rng.normal([3, 16])
        var r = RandomGenerator(seed: 0)
        let y = model.first.forward(Variable(x), rng: &r, training: false).value
        // Reference in Double: ΔW[o, i] = Σ_t B[o,t] E[t] A[t,i] · 8 / (4 + 1e-5).
        let a = branch.a.value, e = branch.e.value, b = branch.b.value, w = model.first.weight.value, bias = model.first.bias!.value
        for n in 0..<3 { for o in 0..<32 {
            var ref = Double(bias[o])
            for i in 0..<16 {
                var delta = 0.0
                for t in 0..<4 { delta += Double(b[o, t]) * Double(e[t, 0]) * Double(a[t, i]) }
                ref += (Double(w[o, i]) + delta * 8 / 4.00001) * Double(x[n, i])
            }
            XCTAssertEqual(Double(y[n, o]), ref, accuracy: 1e-4 * max(1, abs(ref)))
        } }
        let w0 = model.first.weight.value
        try model.mergeAdapters()
        XCTAssertLessThan(maxAbsDifference(model.first.forward(Variable(x), rng: &r, training: false).value, y), 1e-4)
        model.unmergeAdapters()
        XCTAssertLessThan(maxAbsDifference(model.first.weight.value, w0), 1e-6)
    }

    func testBranchGradientMatchesFiniteDifferences() throws {
        var rng = RandomGenerator(seed: 11)
        let branch = try AdaLoRABranch(a: Variable(rng.normal([3, 5]), requiresGrad: true), e: Variable(rng.normal([3, 1]), requiresGrad: true),
                                       b: Variable(rng.normal([6, 3]), requiresGrad: true), scaling: 6, ranknum: 3, dropout: 0)
        let x = Variable(rng.normal([4, 5]), requiresGrad: true)
        let weights = Variable(rng.normal([4, 6]))
        let error = GradientCheck.maxRelativeError(inputs: [branch.a, branch.e, branch.b, x]) { _ in
            var r = RandomGenerator(seed: 0)
            return sum(mul(branch.forward(x, rng: &r, training: true), weights))
        }
        XCTAssertLessThan(error, 2e-3)
    }

    /// Rank 0 (a fully pruned module) is legal: zero-size tensors, zero output, zero ΔW, resizing keeps the rest.
    func testRankZeroAndResizing() throws {
        var rng = RandomGenerator(seed: 2)
        let full = try AdaLoRABranch.initialize(outFeatures: 6, inFeatures: 5, rank: 4, scaling: 8, dropout: 0, random: true, rng: &rng, module: "m")
        let x = Variable(rng.normal([2, 5]))
        var r = RandomGenerator(seed: 0)
        // Zero E where the mask drops a triplet: the pruned branch then gives the same output with fewer triplets.
        let mask = [true, false, true, false]
        for (t, keep) in mask.enumerated() where !keep { full.e.value[flat: t] = 0 }
        let pruned = try full.keeping(mask)
        XCTAssertEqual(pruned.rank, 2); XCTAssertEqual(pruned.a.shape, [2, 5]); XCTAssertEqual(pruned.b.shape, [6, 2])
        XCTAssertEqual(pruned.ranknum, 4)  // ranknum stays init_r
        XCTAssertLessThan(maxAbsDifference(pruned.forward(x, rng: &r, training: false).value, full.forward(x, rng: &r, training: false).value), 1e-6)
        XCTAssertLessThan(maxAbsDifference(pruned.deltaWeight(), full.deltaWeight()), 1e-6)
        let empty = try full.keeping([false, false, false, false])
        XCTAssertEqual(empty.a.shape, [0, 5]); XCTAssertEqual(empty.e.shape, [0, 1]); XCTAssertEqual(empty.b.shape, [6, 0])
        XCTAssertEqual(empty.forward(x, rng: &r, training: false).value, Tensor(zeros: [2, 6]))
        XCTAssertEqual(empty.deltaWeight(), Tensor(zeros: [6, 5]))
        XCTAssertThrowsError(try full.keeping([true])) { e in XCTAssertTrue("\(e)".contains("lora_E")) }
        XCTAssertThrowsError(try AdaLoRABranch(a: Variable(Tensor(zeros: [2, 5])), e: Variable(Tensor(zeros: [3, 1])),
                                               b: Variable(Tensor(zeros: [6, 2])), scaling: 1, ranknum: 2, dropout: 0, module: "q"))
        XCTAssertThrowsError(try AdaLoRABranch.initialize(outFeatures: 6, inFeatures: 5, rank: 0, scaling: 8, dropout: 0, random: false, rng: &rng, module: "m"))
    }

    /// Orthonormal A (rows) and B (columns) give R = 0; A = c·[I 0] gives |c² − 1|·√r exactly.
    func testOrthogonalRegularizationValues() throws {
        var rng = RandomGenerator(seed: 5)
        let (qa, _) = try qr(rng.normal([10, 4]))   // [10, 4], orthonormal columns
        let (qb, _) = try qr(rng.normal([7, 4]))    // [7, 4]
        let orthonormal = try AdaLoRABranch(a: Variable(qa.transposed(), requiresGrad: true), e: Variable(Tensor(zeros: [4, 1]), requiresGrad: true),
                                            b: Variable(qb, requiresGrad: true), scaling: 1, ranknum: 4, dropout: 0)
        XCTAssertEqual(orthogonalRegularization([orthonormal], weight: 0.5).value.scalarValue, 0, accuracy: 1e-5)
        XCTAssertEqual(orthogonalRegularization([orthonormal], weight: 0.5, form: .paperSquared).value.scalarValue, 0, accuracy: 1e-10)
        let c: Float = 1.5, r = 3
        let scaledA = Tensor(shape: [r, 8]) { p in for i in 0..<r { p[i * 8 + i] = c } }
        let scaledB = Tensor(shape: [5, r]) { p in for i in 0..<r { p[i * r + i] = 2 } }  // BᵀB − I = 3·I
        let known = try AdaLoRABranch(a: Variable(scaledA, requiresGrad: true), e: Variable(Tensor(zeros: [r, 1])),
                                      b: Variable(scaledB, requiresGrad: true), scaling: 1, ranknum: 3, dropout: 0)
        let rootR = Float(r).squareRoot()
        // PEFT: mean over the 4 matrices of ‖G − I‖_F, times γ.
        let expected = 0.1 * ((c * c - 1) * rootR + 3 * rootR + 0 + 0) / 4
        XCTAssertEqual(orthogonalRegularization([known, orthonormal], weight: 0.1).value.scalarValue, expected, accuracy: 1e-5)
        let expectedSquared = 0.1 * ((c * c - 1) * (c * c - 1) * Float(r) + 9 * Float(r))
        XCTAssertEqual(orthogonalRegularization([known, orthonormal], weight: 0.1, form: .paperSquared).value.scalarValue, expectedSquared, accuracy: 1e-4)
        XCTAssertEqual(orthogonalRegularization([], weight: 1).value.scalarValue, 0)
    }

    /// Finite-difference check of both forms, on random matrices (‖G − I‖_F well away from 0).
    func testOrthogonalRegularizationGradient() throws {
        var rng = RandomGenerator(seed: 8)
        let branches = try (0..<2).map { _ in
            try AdaLoRABranch(a: Variable(rng.normal([3, 6], std: 0.7), requiresGrad: true), e: Variable(Tensor(zeros: [3, 1])),
                              b: Variable(rng.normal([5, 3], std: 0.7), requiresGrad: true), scaling: 1, ranknum: 3, dropout: 0)
        }
        let inputs = branches.flatMap { [$0.a, $0.b] }
        for form in [OrthogonalRegularizationForm.peft, .paperSquared] {
            let error = GradientCheck.maxRelativeError(inputs: inputs, epsilon: 1e-2) { _ in
                orthogonalRegularization(branches, weight: 0.3, form: form)
            }
            XCTAssertLessThan(error, 2e-3, "\(form)")
        }
        // Gradient descent on R alone makes A, B orthonormal (the regulariser does its job).
        let optimizerInputs = branches.flatMap { [$0.a, $0.b] }
        for _ in 0..<400 {
            for v in optimizerInputs { v.zeroGrad() }
            orthogonalRegularization(branches, weight: 1, form: .paperSquared).backward()
            for v in optimizerInputs { v.value.addScaled(v.grad!, alpha: -0.02) }
        }
        XCTAssertLessThan(orthogonalRegularization(branches, weight: 1).value.scalarValue, 1e-3)
    }
}
