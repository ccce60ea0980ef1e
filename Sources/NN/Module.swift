// Modules: layers and models as trees of named parameters. Names follow PyTorch / Hugging Face attribute
// paths ("model.layers.0.self_attn.q_proj.weight") so checkpoints and adapters map onto them by name.
import Autograd
import TensorCore

/// A layer or model: owns parameters and sub-modules under their PyTorch attribute names.
public protocol Module: AnyObject {
    /// Parameters held directly by this module, named as attributes ("weight", "bias").
    var localParameters: [(String, Variable)] { get }
    /// Direct sub-modules, named as attributes ("q_proj"; a `ModuleList` names its items "0", "1", …).
    var children: [(String, any Module)] { get }
    /// Training mode (dropout active) of this module alone; `train()` / `eval()` set the whole tree.
    var isTraining: Bool { get set }
}

extension Module {
    /// Every module in the tree with its dotted path, this one first as "" (PyTorch `named_modules`).
    public func namedModules() -> [(String, any Module)] {
        var out: [(String, any Module)] = [("", self)]
        var stack: [(String, any Module)] = children.reversed()
        while let (path, module) = stack.popLast() {
            out.append((path, module))
            for (name, child) in module.children.reversed() { stack.append((path + "." + name, child)) }
        }
        return out
    }

    /// Every parameter with its dotted name, e.g. "q_proj.weight". A parameter reachable twice (tied
    /// weights) is listed once, under its first name, as PyTorch's `named_parameters()` does.
    public func namedParameters() -> [(String, Variable)] {
        var seen = Set<ObjectIdentifier>()
        var out: [(String, Variable)] = []
        for (path, module) in namedModules() {
            for (name, p) in module.localParameters where seen.insert(ObjectIdentifier(p)).inserted {
                out.append((path.isEmpty ? name : path + "." + name, p))
            }
        }
        return out
    }

    /// All parameters, in `namedParameters()` order.
    public var parameters: [Variable] { namedParameters().map(\.1) }

    /// Parameters with `requiresGrad`, named: what an optimizer should receive.
    public func trainableParameters() -> [(String, Variable)] { namedParameters().filter { $0.1.requiresGrad } }

    /// Number of scalars in all parameters, or in the trainable ones only.
    public func parameterCount(trainableOnly: Bool = false) -> Int {
        namedParameters().filter { !trainableOnly || $0.1.requiresGrad }.reduce(0) { $0 + $1.1.value.count }
    }

    /// Sets training mode on every module in the tree.
    public func train(_ mode: Bool = true) { for (_, m) in namedModules() { m.isTraining = mode } }

    /// Evaluation mode on every module in the tree (dropout off).
    public func eval() { train(false) }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters { p.zeroGrad() } }

    /// Marks every parameter trainable or frozen.
    public func setRequiresGrad(_ flag: Bool) { for p in parameters { p.requiresGrad = flag } }

    /// Parameter tensors by dotted name (a snapshot; tensors share storage until written).
    public func stateDict() -> [String: Tensor] {
        Dictionary(namedParameters().map { ($0.0, $0.1.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// Copies tensors into parameters by name, checking shapes. With `strict`, every parameter must be
    /// present and every key must name a parameter. Returns the missing and unexpected keys otherwise.
    @discardableResult
    public func load(stateDict: [String: Tensor], strict: Bool = true) throws -> (missing: [String], unexpected: [String]) {
        let named = namedParameters()
        let known = Set(named.map(\.0))
        let unexpected = stateDict.keys.filter { !known.contains($0) }.sorted()
        let missing = named.map(\.0).filter { stateDict[$0] == nil }
        if strict, let key = missing.first { throw NNError.missingKey(key) }
        if strict, let key = unexpected.first { throw NNError.unexpectedKey(key) }
        for (name, p) in named {
            guard let t = stateDict[name] else { continue }
            guard t.shape == p.shape else { throw NNError.shapeMismatch(name: name, expected: p.shape, got: t.shape) }
        }
        for (name, p) in named { if let t = stateDict[name] { p.value = t } }
        return (missing, unexpected)
    }
}

/// An ordered list of modules, named "0", "1", … like `torch.nn.ModuleList` ("layers.3.mlp").
public final class ModuleList<Element: Module>: Module {
    /// The modules, in order.
    public var items: [Element]
    public var isTraining = true

    /// Wraps `items`; item i is named "i".
    public init(_ items: [Element]) { self.items = items }

    public var localParameters: [(String, Variable)] { [] }
    public var children: [(String, any Module)] { items.enumerated().map { (String($0.offset), $0.element) } }
    /// Number of items.
    public var count: Int { items.count }
    /// Item `index`.
    public subscript(index: Int) -> Element { items[index] }
}
