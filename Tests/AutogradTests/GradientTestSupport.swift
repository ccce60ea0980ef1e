// Helpers for gradient checks: trainable inputs and a fixed random weighting that turns any output into
// a scalar whose gradient exercises every output element differently.
import Autograd
import TensorCore

/// A trainable leaf with N(0, scale²) values from `seed`.
func parameter(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Variable {
    var rng = RandomGenerator(seed: seed)
    return Variable(rng.normal(shape, std: scale), requiresGrad: true)
}

/// Σ y ⊙ R with R a fixed N(0, 1) tensor (seeded by the shape), so ∂/∂y = R.
func weightedSum(_ y: Variable, seed: UInt64 = 99) -> Variable {
    var rng = RandomGenerator(seed: seed &+ UInt64(y.value.count))
    return sum(mul(y, Variable(rng.normal(y.shape))))
}

/// Largest relative finite-difference error of `f` composed with `weightedSum`.
func gradientError(_ inputs: [Variable], epsilon: Float = 1e-2, _ f: @escaping ([Variable]) -> Variable) -> Float {
    GradientCheck.maxRelativeError(inputs: inputs, epsilon: epsilon) { weightedSum(f($0)) }
}
