// Normalisation layers around the fused Autograd ops (forward and backward live in TensorCore's NormKernels).
import Autograd
import TensorCore

/// Llama's RMSNorm: y = weight ⊙ x / sqrt(mean(x²) + eps), over the last dimension.
public final class RMSNorm: Module {
    /// [dimension], initialised to ones.
    public var weight: Variable
    public let eps: Float
    public var isTraining = true

    public init(dimension: Int, eps: Float = 1e-6) {
        weight = Variable(Tensor(repeating: 1, shape: [dimension]), requiresGrad: true); self.eps = eps
    }

    /// Around a checkpoint's weight [dimension].
    public init(weight: Tensor, eps: Float, trainable: Bool = false) throws {
        guard weight.rank == 1 else { throw NNError.shapeMismatch(name: "RMSNorm.weight", expected: [-1], got: weight.shape) }
        self.weight = Variable(weight, requiresGrad: trainable); self.eps = eps
    }

    public var localParameters: [(String, Variable)] { [("weight", weight)] }
    public var children: [(String, any Module)] { [] }

    /// x [..., dimension] → same shape.
    public func callAsFunction(_ x: Variable) throws -> Variable { try rmsNorm(x, weight: weight, eps: eps) }
}

/// `torch.nn.LayerNorm` over the last dimension, with weight and bias (BERT).
public final class LayerNorm: Module {
    public var weight: Variable
    public var bias: Variable
    public let eps: Float
    public var isTraining = true

    public init(dimension: Int, eps: Float = 1e-5) {
        weight = Variable(Tensor(repeating: 1, shape: [dimension]), requiresGrad: true)
        bias = Variable(Tensor(zeros: [dimension]), requiresGrad: true)
        self.eps = eps
    }

    public init(weight: Tensor, bias: Tensor, eps: Float, trainable: Bool = false) throws {
        guard weight.rank == 1, bias.shape == weight.shape else {
            throw NNError.shapeMismatch(name: "LayerNorm.bias", expected: weight.shape, got: bias.shape)
        }
        self.weight = Variable(weight, requiresGrad: trainable); self.bias = Variable(bias, requiresGrad: trainable)
        self.eps = eps
    }

    public var localParameters: [(String, Variable)] { [("weight", weight), ("bias", bias)] }
    public var children: [(String, any Module)] { [] }

    public func callAsFunction(_ x: Variable) throws -> Variable { try layerNorm(x, weight: weight, bias: bias, eps: eps) }
}
