import XCTest
import Autograd
import TensorCore
import TestSupport

final class ActivationOpsTests: XCTestCase {
    func testForwardValuesAgainstClosedForms() {
        // Reference numbers from python3 math: gelu exact 0.5x(1+erf(x/√2)), tanh form, silu x/(1+e^−x).
        let x = Variable(Tensor([1, -0.5, -2], shape: [3]))
        let exact = gelu(x).value, approx = gelu(x, approximation: .tanh).value, s = silu(x).value
        XCTAssertEqual(exact[0], 0.8413447460685429, accuracy: 1e-6)
        XCTAssertEqual(exact[1], -0.15426876936299344, accuracy: 1e-6)
        XCTAssertEqual(approx[0], 0.8411919906082768, accuracy: 1e-6)
        XCTAssertEqual(approx[1], -0.15428599017485606, accuracy: 1e-6)
        XCTAssertEqual(s[0], 0.7310585786300049, accuracy: 1e-6)
        XCTAssertEqual(s[2], -0.2384058440442351, accuracy: 1e-6)
        XCTAssertEqual(relu(x).value.array, [1, 0, 0])
        let sm = softmax(Variable(Tensor([1, 2, 3, 1, 1, 1], shape: [2, 3]))).value
        XCTAssertEqual(sm[0, 0], 0.09003057317038046, accuracy: 1e-6)
        XCTAssertEqual(sm[0, 2], 0.6652409557748219, accuracy: 1e-6)
        XCTAssertEqual(sm[1, 1], 1.0 / 3, accuracy: 1e-6)
        let lsm = logSoftmax(Variable(Tensor([1, 2, 3], shape: [1, 3]))).value
        XCTAssertEqual(lsm[0, 2], -0.40760596444438013, accuracy: 1e-6)
        let sw = swiglu(gate: Variable(Tensor([1, -2], shape: [2])), up: Variable(Tensor([3, 0.5], shape: [2]))).value
        XCTAssertEqual(sw[0], 3 * 0.7310585786300049, accuracy: 1e-6)
        XCTAssertEqual(sw[1], 0.5 * -0.2384058440442351, accuracy: 1e-6)
    }

    func testSoftmaxIsStableForHugeLogits() {
        let y = softmax(Variable(Tensor([1000, 1000, -1000], shape: [1, 3]))).value
        XCTAssertEqual(y.array, [0.5, 0.5, 0])
        let l = logSoftmax(Variable(Tensor([1000, 0], shape: [1, 2]))).value
        XCTAssertEqual(l[0, 0], 0, accuracy: 1e-6)
        XCTAssertEqual(l[0, 1], -1000, accuracy: 1e-3)
    }

    func testActivationGradients() {
        let x = parameter([4, 6], seed: 1, scale: 1.5)
        XCTAssertLessThan(gradientError([x]) { v in silu(v[0]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in gelu(v[0]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in gelu(v[0], approximation: .tanh) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in softmax(v[0]) }, 2e-3)
        XCTAssertLessThan(gradientError([x]) { v in logSoftmax(v[0]) }, 2e-3)
        let up = parameter([4, 6], seed: 2)
        XCTAssertLessThan(gradientError([x, up]) { v in swiglu(gate: v[0], up: v[1]) }, 2e-3)
        // relu: keep inputs away from the kink at 0 so central differences are exact.
        let r = Variable(Tensor([0.5, -0.7, 1.2, -0.1, 0.3, 2], shape: [2, 3]), requiresGrad: true)
        XCTAssertLessThan(gradientError([r], epsilon: 1e-2) { v in relu(v[0]) }, 2e-3)
    }

    func testSwiGLUWithFrozenUpGivesOnlyGateGradient() {
        let gate = parameter([5], seed: 3), up = Variable(Tensor(repeating: 2, shape: [5]))
        sum(swiglu(gate: gate, up: up)).backward()
        XCTAssertNil(up.grad)
        let reference = Variable(gate.value, requiresGrad: true)
        sum(scale(silu(reference), by: 2)).backward()
        XCTAssertLessThan(maxAbsDifference(gate.grad!, reference.grad!), 1e-6)
    }

    func testDropoutIsIdentityWhenOffAndInvertedWhenOn() {
        var rng = RandomGenerator(seed: 7)
        let x = Variable(Tensor(repeating: 1, shape: [100, 100]), requiresGrad: true)
        XCTAssertTrue(dropout(x, p: 0, rng: &rng, training: true) === x)
        XCTAssertTrue(dropout(x, p: 0.5, rng: &rng, training: false) === x)
        XCTAssertEqual(rng.position, 0, "identity dropout must not consume randomness")
        let y = dropout(x, p: 0.25, rng: &rng, training: true)
        let values = y.value.array
        XCTAssertTrue(values.allSatisfy { $0 == 0 || abs($0 - 1 / 0.75) < 1e-6 })
        let kept = Float(values.filter { $0 != 0 }.count) / Float(values.count)
        XCTAssertEqual(kept, 0.75, accuracy: 0.02)
        XCTAssertEqual(y.value.mean(), 1, accuracy: 0.03)
        _ = rng.bernoulli([1000], probability: 0.5)  // the stream moves on before backward redraws the mask
        sum(y).backward()
        XCTAssertEqual(x.grad!, y.value, "gradient of inverted dropout is the scaled mask")
        XCTAssertEqual(dropout(x, p: 1, rng: &rng, training: true).value.sum(), 0)
    }
}
