// Fully connected layer, PyTorch layout: weight [out, in], y = x·Wᵀ + b.
import Autograd
import TensorCore

/// `torch.nn.Linear`: y = x·Wᵀ + b with weight [out, in] and optional bias [out].
/// Open so adapters (LoRA) can wrap or specialise it while keeping the "weight"/"bias" names.
open class Linear: Module {
    /// Input and output sizes.
    public let inFeatures: Int
    public let outFeatures: Int
    /// [outFeatures, inFeatures].
    public var weight: Variable
    /// [outFeatures], or nil for a bias-free layer.
    public var bias: Variable?
    public var isTraining = true

    /// PyTorch's default initialisation: kaiming_uniform(a = √5) for the weight, which is U(−1/√in, 1/√in),
    /// and the same bound for the bias; weight drawn first, then bias, from `rng`.
    public init(inFeatures: Int, outFeatures: Int, bias: Bool = true, rng: inout RandomGenerator) {
        precondition(inFeatures > 0 && outFeatures >= 0, "Linear(\(inFeatures), \(outFeatures)): sizes must be positive")
        self.inFeatures = inFeatures; self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Variable(rng.uniform([outFeatures, inFeatures], low: -bound, high: bound), requiresGrad: true)
        self.bias = bias ? Variable(rng.uniform([outFeatures], low: -bound, high: bound), requiresGrad: true) : nil
    }

    /// A layer around given tensors (e.g. loaded from a checkpoint): weight [out, in], bias [out].
    public init(weight: Tensor, bias: Tensor? = nil, trainable: Bool = true) throws {
        guard weight.rank == 2 else { throw NNError.shapeMismatch(name: "Linear.weight", expected: [-1, -1], got: weight.shape) }
        if let bias, bias.shape != [weight.shape[0]] {
            throw NNError.shapeMismatch(name: "Linear.bias", expected: [weight.shape[0]], got: bias.shape)
        }
        outFeatures = weight.shape[0]; inFeatures = weight.shape[1]
        self.weight = Variable(weight, requiresGrad: trainable)
        self.bias = bias.map { Variable($0, requiresGrad: trainable) }
    }

    open var localParameters: [(String, Variable)] {
        if let bias { return [("weight", weight), ("bias", bias)] }
        return [("weight", weight)]
    }

    open var children: [(String, any Module)] { [] }

    /// x: [..., in] → [..., out].
    open func callAsFunction(_ x: Variable) -> Variable { linear(x, weight: weight, bias: bias) }

    /// True when neither weight nor bias is trained; setting it freezes or unfreezes both.
    public var isFrozen: Bool {
        get { !weight.requiresGrad && !(bias?.requiresGrad ?? false) }
        set { weight.requiresGrad = !newValue; bias?.requiresGrad = !newValue }
    }
}
