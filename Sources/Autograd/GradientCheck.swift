// Finite-difference gradient checking: the test every op's backward must pass.
import TensorCore

public enum GradientCheck {
    /// Largest relative error between analytic gradients and central differences of `loss` w.r.t. each input.
    /// `loss` must rebuild the graph from the given variables and return a scalar. Float32 central differences
    /// with `epsilon` ≈ 1e-2…1e-3 give ~1e-3 relative agreement for smooth ops; compare against that.
    /// Errors use max|a − n| / max(1, max|n|) per input, so tiny gradients do not inflate them.
    public static func maxRelativeError(inputs: [Variable], epsilon: Float = 1e-2,
                                        loss: ([Variable]) -> Variable) -> Float {
        for v in inputs { v.zeroGrad() }
        loss(inputs).backward()
        var worst: Float = 0
        for v in inputs where v.requiresGrad {
            let analytic = v.grad ?? Tensor(zeros: v.shape)
            var numeric = Tensor(zeros: v.shape)
            for i in 0..<v.value.count {
                let original = v.value[flat: i]
                v.value[flat: i] = original + epsilon
                let plus = Double(loss(inputs).value.scalarValue)
                v.value[flat: i] = original - epsilon
                let minus = Double(loss(inputs).value.scalarValue)
                v.value[flat: i] = original
                numeric[flat: i] = Float((plus - minus) / (2 * Double(epsilon)))
            }
            var maxDiff: Float = 0, scale: Float = 1
            for i in 0..<numeric.count {
                maxDiff = max(maxDiff, abs(analytic[flat: i] - numeric[flat: i]))
                scale = max(scale, abs(numeric[flat: i]))
            }
            worst = max(worst, maxDiff / scale)
        }
        return worst
    }
}
