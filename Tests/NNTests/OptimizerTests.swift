import XCTest
import Autograd
import NN
import TensorCore
import TestSupport

// Expected values come from /tmp/optref.py-style NumPy float64 re-implementations of torch.optim formulas:
//   AdamW: p *= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
//          p −= lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)
//   SGD:   d = g + wd·p; buf = d (first step) or μ·buf + (1−dampening)·d; d = buf (or d + μ·buf, Nesterov);
//          p −= lr·d
// with p0 = [0.5, −1, 2], g1 = [0.1, −0.2, 0.3], g2 = [−0.4, 0.5, 0.05].
final class OptimizerTests: XCTestCase {
    let p0: [Float] = [0.5, -1, 2]
    let gradients: [[Float]] = [[0.1, -0.2, 0.3], [-0.4, 0.5, 0.05]]

    func run(_ optimizer: Optimizer, _ p: Variable, steps: Range<Int>) {
        for t in steps {
            p.grad = Tensor(gradients[t], shape: [3])
            optimizer.step()
            optimizer.zeroGrad()
        }
    }

    func assertClose(_ a: [Float], _ b: [Double], _ tol: Float = 2e-6, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, Float(y), accuracy: tol, file: file, line: line) }
    }

    func testAdamWTwoStepsMatchTorchFormula() throws {
        let p = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let untouched = Variable(Tensor([7], shape: [1]), requiresGrad: true)  // no gradient: skipped
        let opt = try AdamW(parameters: [("w", p), ("u", untouched)], learningRate: 0.1, weightDecay: 0.01)
        run(opt, p, steps: 0..<1)
        assertClose(p.value.array, [0.39950001, -0.899000005, 1.898000003])
        run(opt, p, steps: 1..<2)
        assertClose(p.value.array, [0.455050857, -0.94232253, 1.817769272])
        XCTAssertEqual(untouched.value.array, [7])
        let state = opt.state()
        XCTAssertEqual(Set(state.keys), ["w.step", "w.exp_avg", "w.exp_avg_sq"])
        XCTAssertEqual(state["w.step"]!.scalarValue, 2)
        assertClose(state["w.exp_avg"]!.array, [-0.031, 0.032, 0.032], 1e-7)
        assertClose(state["w.exp_avg_sq"]!.array, [1.6999e-04, 2.8996e-04, 9.2410e-05], 1e-9)
    }

    func testAdamWResumesExactlyFromExportedState() throws {
        let a = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let full = try AdamW(parameters: [("layer.weight", a)], learningRate: 0.05)
        run(full, a, steps: 0..<2)

        let b = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let first = try AdamW(parameters: [("layer.weight", b)], learningRate: 0.05)
        run(first, b, steps: 0..<1)
        let resumed = try AdamW(parameters: [("layer.weight", b)], learningRate: 0.05)
        try resumed.load(state: first.state())
        run(resumed, b, steps: 1..<2)
        XCTAssertEqual(a.value, b.value, "resuming from exported state is bit-exact")
    }

    func testOptimizerStateLoadRejectsBadEntries() throws {
        let p = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let opt = try AdamW(parameters: [("w", p)])
        XCTAssertThrowsError(try opt.load(state: ["x.exp_avg": Tensor(zeros: [3])]))
        XCTAssertThrowsError(try opt.load(state: ["w.exp_avg": Tensor(zeros: [3])]))  // incomplete
        XCTAssertThrowsError(try opt.load(state: ["w.exp_avg": Tensor(zeros: [4]), "w.exp_avg_sq": Tensor(zeros: [4]),
                                                  "w.step": .scalar(1)]))
        XCTAssertThrowsError(try opt.load(state: ["w.exp_avg": Tensor(zeros: [3]), "w.exp_avg_sq": Tensor(zeros: [3]),
                                                  "w.step": .scalar(1.5)]))
        XCTAssertThrowsError(try AdamW(parameters: [("w", p), ("w", p)])) { XCTAssertEqual($0 as? NNError, .duplicateParameterName("w")) }
        XCTAssertThrowsError(try AdamW(parameters: [("w", p)], beta2: 1))
        let sgd = try SGD(parameters: [("w", p)], learningRate: 0.1, momentum: 0.9)
        XCTAssertThrowsError(try sgd.load(state: ["w.momentum_buffer": Tensor(zeros: [2])]))
    }

    func testParameterGroupsScaleLearningRateAndOverrideDecay() throws {
        // Group lr = 0.05 × 2 = 0.1 and decay 0.01 → the same trajectory as the single-group test.
        let p = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let opt = try AdamW(groups: [ParameterGroup([("w", p)], weightDecay: 0.01, learningRateMultiplier: 2)],
                            learningRate: 0.05, weightDecay: 0.5)
        run(opt, p, steps: 0..<2)
        assertClose(p.value.array, [0.455050857, -0.94232253, 1.817769272])
    }

    func testSGDMomentumDampeningWeightDecay() throws {
        let p = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let opt = try SGD(parameters: [("w", p)], learningRate: 0.1, momentum: 0.9, dampening: 0.1, weightDecay: 0.1)
        run(opt, p, steps: 0..<1)
        assertClose(p.value.array, [0.485, -0.97, 1.95])
        run(opt, p, steps: 1..<2)
        assertClose(p.value.array, [0.503135, -0.97927, 1.88295])
        assertClose(opt.state()["w.momentum_buffer"]!.array, [-0.18135, 0.0927, 0.6705])
    }

    func testSGDNesterovAndPlain() throws {
        let p = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let opt = try SGD(parameters: [("w", p)], learningRate: 0.1, momentum: 0.9, nesterov: true)
        run(opt, p, steps: 0..<2)
        assertClose(p.value.array, [0.5489, -1.0408, 1.9092])
        let q = Variable(Tensor(p0, shape: [3]), requiresGrad: true)
        let plain = try SGD(parameters: [("q", q)], learningRate: 0.5)
        run(plain, q, steps: 0..<1)
        assertClose(q.value.array, [0.45, -0.9, 1.85])
        XCTAssertTrue(plain.state().isEmpty)
    }

    func testClipGradNormReturnsNormBeforeClipping() {
        // ‖[3, 4, 12]‖ = 13; coefficient 1/(13 + 1e-6) = 0.0769230710 (python3).
        let a = Variable(Tensor([3, 4], shape: [2]), requiresGrad: true), b = Variable(Tensor([12], shape: [1]), requiresGrad: true)
        let none = Variable(Tensor([1], shape: [1]), requiresGrad: true)
        a.grad = Tensor([3, 4], shape: [2]); b.grad = Tensor([12], shape: [1])
        let total = clipGradNorm([a, b, none], maxNorm: 1)
        XCTAssertEqual(total, 13, accuracy: 1e-6)
        assertClose(a.grad!.array, [0.23076921301775286, 0.3076922840236705], 1e-7)
        assertClose(b.grad!.array, [0.9230768520710114], 1e-7)
        XCTAssertNil(none.grad)
        XCTAssertEqual(gradientNorm([a, b]), 1, accuracy: 1e-6)
        // Below the limit: returned norm, gradients unchanged.
        XCTAssertEqual(clipGradNorm([a, b], maxNorm: 5), 1, accuracy: 1e-6)
        assertClose(b.grad!.array, [0.9230768520710114], 1e-7)
        b.grad = Tensor([.nan], shape: [1])
        XCTAssertTrue(clipGradNorm([a, b], maxNorm: 1).isNaN)
        assertClose(a.grad!.array, [0.23076921301775286, 0.3076922840236705], 1e-7)
    }

    func testAdamWTrainsALinearLayerOnMSE() throws {
        // y = x·Wᵀ with a known W*: AdamW must drive the loss down by orders of magnitude.
        var rng = RandomGenerator(seed: 5)
        let target = rng.normal([3, 4]), x = Variable(rng.normal([32, 4]))
        let y = Variable(Tensor.matmul(x.value, target, transposeB: true))
        let layer = Linear(inFeatures: 4, outFeatures: 3, bias: false, rng: &rng)
        let opt = try AdamW(parameters: layer.trainableParameters(), learningRate: 0.05, weightDecay: 0)
        let initial = mseLoss(layer(x), y).value.scalarValue
        var last = initial
        for _ in 0..<300 {
            let loss = mseLoss(layer(x), y)
            loss.backward()
            opt.step(); opt.zeroGrad()
            last = loss.value.scalarValue
        }
        XCTAssertLessThan(last, initial * 1e-3, "initial \(initial), final \(last)")
    }
}

final class AdamWParityTests: XCTestCase {
    /// Fixture peft/llama_lora: torch.optim.AdamW(lr=1e-3, weight_decay=0.01) applied once to the saved
    /// LoRA weights with the recorded gradients (torch 2.15, float32).
    func testOneStepMatchesTorchOnLlamaLoRAFixture() throws {
        let io = try SafetensorsTestReader.read(Fixtures.url("peft/llama_lora/io.safetensors"))
        let adapter = try SafetensorsTestReader.read(Fixtures.url("peft/llama_lora/adapter/adapter_model.safetensors"))
        var params: [(String, Variable)] = []
        for (key, value) in adapter.sorted(by: { $0.key < $1.key }) {
            // base_model.model.<path>.lora_A.weight ↔ grad.<path>.lora_A.default.weight
            let path = String(key.dropFirst("base_model.model.".count)).replacingOccurrences(of: ".weight", with: ".default.weight")
            let p = Variable(value, requiresGrad: true)
            p.grad = try XCTUnwrap(io["grad." + path], path)
            params.append((path, p))
        }
        XCTAssertEqual(params.count, 8)
        let opt = try AdamW(parameters: params, learningRate: 1e-3, weightDecay: 0.01)
        opt.step()
        var worst: Float = 0
        for (path, p) in params { worst = max(worst, maxAbsDifference(p.value, try XCTUnwrap(io["after_adamw." + path]))) }
        XCTAssertLessThan(worst, 1e-7, "max |ours − torch| = \(worst)")
        print("AdamW parity vs torch: max abs difference \(worst)")
    }
}
