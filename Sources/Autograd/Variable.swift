// Reverse-mode autograd over coarse, fused ops.
//
// A `Variable` holds a value and, when it depends on something that requires a gradient, the closure that
// pushes its gradient to its inputs. Ops whose inputs need no gradient record nothing, so inference and
// frozen weights cost no graph memory and no weight-gradient GEMM — the saving LoRA exists for.
import TensorCore

public final class Variable {
    public var value: Tensor
    /// Accumulated ∂loss/∂self after `backward()`; nil until a gradient reaches it.
    public var grad: Tensor?
    /// Leaves: true for trainable parameters. Non-leaves: true iff some input requires a gradient.
    public var requiresGrad: Bool
    public var name: String?

    /// Inputs that need a gradient, and the vector–Jacobian product that sends `gradOutput` to them.
    let parents: [Variable]
    let backwardFn: ((Tensor) -> Void)?

    /// A leaf: a parameter (`requiresGrad: true`) or a constant input.
    public init(_ value: Tensor, requiresGrad: Bool = false, name: String? = nil) {
        self.value = value; self.requiresGrad = requiresGrad; self.name = name
        parents = []; backwardFn = nil
    }

    /// An op result. `backward` receives ∂loss/∂output and must call `accumulate` on the inputs it feeds.
    /// Inputs that do not require a gradient are dropped, and with none left nothing is recorded.
    public init(_ value: Tensor, inputs: [Variable], name: String? = nil, backward: @escaping (Tensor) -> Void) {
        self.value = value; self.name = name
        let needing = inputs.filter { $0.requiresGrad }
        requiresGrad = !needing.isEmpty
        parents = needing
        backwardFn = needing.isEmpty ? nil : backward
    }

    public var shape: [Int] { value.shape }
    public var isLeaf: Bool { backwardFn == nil }

    /// Adds `g` to this variable's gradient (no-op when it needs none). Ops call this from their backward.
    public func accumulate(_ g: Tensor) {
        guard requiresGrad else { return }
        precondition(g.shape == value.shape || g.count == value.count,
                     "gradient shape \(g.shape) does not match value shape \(value.shape) for \(name ?? "variable")")
        if var existing = grad {
            existing.withUnsafeMutableBufferPointer { dst in
                g.withUnsafeBufferPointer { src in for i in 0..<dst.count { dst[i] += src[i] } }
            }
            grad = existing
        } else {
            grad = g.shape == value.shape ? g : g.reshaped(value.shape)
        }
    }

    /// Back-propagates from this scalar (or from `seed`, for a non-scalar output) through the whole graph.
    /// Each node runs once, after every node that consumes it, so gradients are complete when it runs.
    public func backward(seed: Tensor? = nil) {
        precondition(seed != nil || value.count == 1, "backward() without a seed needs a scalar, got shape \(value.shape)")
        guard requiresGrad else { return }
        accumulate(seed ?? Tensor(repeating: 1, shape: value.shape))
        for node in topologicalOrder().reversed() {
            guard let fn = node.backwardFn, let g = node.grad else { continue }
            fn(g)
            node.grad = nil  // intermediate gradients are not kept: memory back as soon as it is used
        }
    }

    /// Post-order DFS (iterative: transformer graphs are deep enough to overflow a recursive walk).
    func topologicalOrder() -> [Variable] {
        var order: [Variable] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Variable, Bool)] = [(self, false)]
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

    /// Clears the gradient of a leaf (optimizers call this between steps).
    public func zeroGrad() { grad = nil }
}
