// Token embedding table: row lookup with a scatter-add gradient.
import Autograd
import TensorCore

/// `torch.nn.Embedding`: weight [count, dimension]; maps ids to rows.
public final class Embedding: Module {
    /// Rows (vocabulary size) and row width.
    public let count: Int
    public let dimension: Int
    /// [count, dimension].
    public var weight: Variable
    public var isTraining = true

    /// PyTorch's default initialisation: N(0, 1).
    public init(count: Int, dimension: Int, rng: inout RandomGenerator) {
        precondition(count >= 0 && dimension >= 0, "Embedding(\(count), \(dimension)): negative size")
        self.count = count; self.dimension = dimension
        weight = Variable(rng.normal([count, dimension]), requiresGrad: true)
    }

    /// A table around a given tensor [count, dimension] (e.g. a checkpoint's `embed_tokens.weight`).
    public init(weight: Tensor, trainable: Bool = true) throws {
        guard weight.rank == 2 else { throw NNError.shapeMismatch(name: "Embedding.weight", expected: [-1, -1], got: weight.shape) }
        count = weight.shape[0]; dimension = weight.shape[1]
        self.weight = Variable(weight, requiresGrad: trainable)
    }

    public var localParameters: [(String, Variable)] { [("weight", weight)] }
    public var children: [(String, any Module)] { [] }

    /// ids (n) → [n, dimension]; throws when an id is outside 0..<count.
    public func callAsFunction(_ ids: [Int32]) throws -> Variable { try embedding(ids: ids, table: weight) }
}
