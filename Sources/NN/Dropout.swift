// Dropout layer: inverted dropout in training mode, identity in evaluation mode.
import Autograd
import TensorCore

/// `torch.nn.Dropout(p)`: zeroes elements with probability p while training and scales the rest by 1/(1−p).
public final class Dropout: Module {
    /// Probability of zeroing an element.
    public let probability: Float
    public var isTraining = true

    /// Throws unless 0 ≤ p ≤ 1.
    public init(probability: Float) throws {
        guard probability >= 0 && probability <= 1 else {
            throw NNError.invalidArgument(name: "dropout probability", reason: "\(probability) is outside [0, 1]")
        }
        self.probability = probability
    }

    public var localParameters: [(String, Variable)] { [] }
    public var children: [(String, any Module)] { [] }

    /// Applies dropout (training mode) or passes `x` through unchanged (eval mode or p = 0).
    public func callAsFunction(_ x: Variable, rng: inout RandomGenerator) -> Variable {
        dropout(x, p: probability, rng: &rng, training: isTraining)
    }
}
