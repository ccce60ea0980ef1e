// What every optimizer shares: named parameter groups, a settable learning rate, gradient reset, and state
// exported as named tensors ("<parameter>.<field>") so checkpoints can save and resume it exactly.
import Autograd
import TensorCore

/// A set of parameters updated with the same hyper-parameters (PyTorch's param_groups).
public struct ParameterGroup {
    /// Parameters with unique names (the names key the optimizer state).
    public var parameters: [(String, Variable)]
    /// Weight decay for this group (nil: the optimizer's default).
    public var weightDecay: Double?
    /// This group's learning rate = optimizer learning rate × multiplier (e.g. LoRA+ gives lora_B 16×).
    public var learningRateMultiplier: Double

    /// A group; nil weight decay uses the optimizer default.
    public init(_ parameters: [(String, Variable)], weightDecay: Double? = nil, learningRateMultiplier: Double = 1) {
        self.parameters = parameters; self.weightDecay = weightDecay; self.learningRateMultiplier = learningRateMultiplier
    }
}

/// A first-order optimizer over named parameters.
public protocol Optimizer: AnyObject {
    /// Base learning rate; schedulers set it before each `step()`.
    var learningRate: Double { get set }
    /// Updates every parameter that has a gradient; parameters with a nil gradient are left untouched.
    func step()
    /// Per-parameter state as named tensors, e.g. "q_proj.lora_A.weight.exp_avg".
    func state() -> [String: Tensor]
    /// Restores state exported by `state()`; throws on unknown names, wrong shapes or incomplete entries.
    func load(state: [String: Tensor]) throws
    /// All parameters, in group order.
    var allParameters: [(String, Variable)] { get }
}

extension Optimizer {
    /// Drops every parameter's gradient (PyTorch `zero_grad(set_to_none=True)`).
    public func zeroGrad() { for (_, p) in allParameters { p.zeroGrad() } }
}

/// Throws if two parameters share a name; returns the groups unchanged otherwise.
func checkUniqueNames(_ groups: [ParameterGroup]) throws -> [ParameterGroup] {
    var seen = Set<String>()
    for g in groups {
        for (name, _) in g.parameters where !seen.insert(name).inserted { throw NNError.duplicateParameterName(name) }
        guard g.learningRateMultiplier >= 0, g.learningRateMultiplier.isFinite else {
            throw NNError.invalidArgument(name: "learningRateMultiplier", reason: "\(g.learningRateMultiplier) must be finite and ≥ 0")
        }
    }
    return groups
}

/// Splits a state key "<parameter name>.<field>" against the known names and fields.
func parseStateKey(_ key: String, names: Set<String>, fields: [String]) throws -> (name: String, field: String) {
    for field in fields where key.hasSuffix("." + field) {
        let name = String(key.dropLast(field.count + 1))
        if names.contains(name) { return (name, field) }
        throw NNError.invalidOptimizerState(key: key, reason: "no parameter named \(name)")
    }
    throw NNError.invalidOptimizerState(key: key, reason: "field is not one of \(fields)")
}

/// Reads a step counter stored as a scalar tensor: a whole number in 0...2²⁴ (exact in Float32).
func parseStep(_ t: Tensor, key: String) throws -> Int {
    guard t.count == 1, let v = Optional(t[flat: 0]), v >= 0, v <= 16_777_216, v == v.rounded() else {
        throw NNError.invalidOptimizerState(key: key, reason: "step must be one whole number in 0...16777216, got \(t)")
    }
    return Int(v)
}
