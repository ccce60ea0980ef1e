// Reverse-mode autograd over coarse, fused ops.
//
// A `Variable` holds a value and, when it depends on something that requires a gradient, the closure that
// pushes its gradient to its inputs. Ops whose inputs need no gradient record nothing, so inference and
// frozen weights cost no graph memory and no weight-gradient GEMM — the saving LoRA exists for.
import TensorCore

/// The graph side of a `Variable`: gradient, parents and vector–Jacobian product, but not the value. The graph
/// links nodes, never values, so an intermediate value is freed as soon as the forward code lets go of its
/// `Variable` — what a backward needs it captures itself (PyTorch's saved tensors). Without this split every
/// activation of a forward pass would stay alive until backward, about twice the memory training needs.
public final class GradientNode {
    /// Shape of the value (kept in step by `Variable.value`).
    public internal(set) var shape: [Int]
    public var requiresGrad: Bool
    /// Accumulated ∂loss/∂value; nil until a gradient reaches it.
    public var grad: Tensor?
    public var name: String?
    /// Inputs that need a gradient, and the vector–Jacobian product that sends `gradOutput` to them.
    let parents: [GradientNode]
    /// Released once it has run, with the tensors it saved: memory falls layer by layer during backward.
    var backwardFn: ((Tensor) -> Void)?

    init(shape: [Int], requiresGrad: Bool, name: String?, parents: [GradientNode], backward: ((Tensor) -> Void)?) {
        self.shape = shape; self.requiresGrad = requiresGrad; self.name = name
        self.parents = parents; backwardFn = backward
    }

    public var count: Int { shape.reduce(1, *) }

    /// Adds `g` to the gradient (no-op when none is needed). Ops call this from their backward.
    public func accumulate(_ g: Tensor) {
        guard requiresGrad else { return }
        precondition(g.shape == shape || g.count == count,
                     "gradient shape \(g.shape) does not match value shape \(shape) for \(name ?? "variable")")
        if var existing = grad {
            grad = nil  // sole owner: add in place
            existing.withUnsafeMutableBufferPointer { dst in
                g.withUnsafeBufferPointer { src in for i in 0..<dst.count { dst[i] += src[i] } }
            }
            grad = existing
        } else {
            grad = g.shape == shape ? g : g.reshaped(shape)
        }
    }

    /// Post-order DFS (iterative: transformer graphs are deep enough to overflow a recursive walk).
    func topologicalOrder() -> [GradientNode] {
        var order: [GradientNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradientNode, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            guard visited.insert(ObjectIdentifier(node)).inserted else { continue }
            stack.append((node, true))
            for p in node.parents where p.backwardFn != nil && !visited.contains(ObjectIdentifier(p)) {
                stack.append((p, false))
            }
        }
        return order
    }
}

public final class Variable {
    public var value: Tensor { didSet { node.shape = value.shape } }
    /// The node the graph holds for this variable (ops capture it in their backward instead of the variable).
    public let node: GradientNode

    /// Accumulated ∂loss/∂self after `backward()`; nil until a gradient reaches it.
    public var grad: Tensor? {
        get { node.grad }
        set { node.grad = newValue }
    }
    /// Leaves: true for trainable parameters. Non-leaves: true iff some input requires a gradient.
    public var requiresGrad: Bool {
        get { node.requiresGrad }
        set { node.requiresGrad = newValue }
    }
    public var name: String? {
        get { node.name }
        set { node.name = newValue }
    }

    /// A leaf: a parameter (`requiresGrad: true`) or a constant input.
    public init(_ value: Tensor, requiresGrad: Bool = false, name: String? = nil) {
        self.value = value
        node = GradientNode(shape: value.shape, requiresGrad: requiresGrad, name: name, parents: [], backward: nil)
    }

    /// An op result. `backward` receives ∂loss/∂output and must call `accumulate` on the inputs' nodes it feeds;
    /// it should capture those nodes (`[x = x.node]`) and the tensors it needs, not the input variables.
    /// Inputs that do not require a gradient are dropped, and with none left nothing is recorded.
    public init(_ value: Tensor, inputs: [Variable], name: String? = nil, backward: @escaping (Tensor) -> Void) {
        self.value = value
        // With recording off the result holds its value only, but `requiresGrad` still says whether a gradient
        // would flow (see `recomputed`).
        let needing = inputs.filter { $0.requiresGrad }.map(\.node)
        let records = GradientRecording.isEnabled && !needing.isEmpty
        node = GradientNode(shape: value.shape, requiresGrad: !needing.isEmpty, name: name, parents: records ? needing : [],
                            backward: records ? backward : nil)
    }

    /// A recorded op result whose backward also reaches parameters it captured itself, not only `inputs`.
    init(_ value: Tensor, recordingOver inputs: [Variable], backward: @escaping (Tensor) -> Void) {
        self.value = value
        node = GradientNode(shape: value.shape, requiresGrad: true, name: nil,
                            parents: inputs.filter { $0.requiresGrad }.map(\.node), backward: backward)
    }

    public var shape: [Int] { value.shape }
    /// True for parameters and constants: nothing feeds a gradient into them.
    public var isLeaf: Bool { node.parents.isEmpty }

    /// Adds `g` to this variable's gradient (no-op when it needs none).
    public func accumulate(_ g: Tensor) { node.accumulate(g) }

    /// Back-propagates from this scalar (or from `seed`, for a non-scalar output) through the whole graph.
    /// Each node runs once, after every node that consumes it, so gradients are complete when it runs.
    public func backward(seed: Tensor? = nil) {
        precondition(seed != nil || value.count == 1, "backward() without a seed needs a scalar, got shape \(value.shape)")
        guard requiresGrad else { return }
        accumulate(seed ?? Tensor(repeating: 1, shape: value.shape))
        for node in node.topologicalOrder().reversed() {
            guard let fn = node.backwardFn, let g = node.grad else { continue }
            node.grad = nil  // intermediate gradients are not kept: memory back as soon as it is used
            node.backwardFn = nil  // nor what the op saved for backward (a graph is back-propagated once)
            fn(g)
        }
    }

    /// Clears the gradient of a leaf (optimizers call this between steps).
    public func zeroGrad() { grad = nil }
}
