// Activation recomputation ("gradient checkpointing"): a segment of the forward pass — one decoder layer — runs
// without recording a graph, keeping only its inputs; its backward runs the segment again, this time recorded,
// and back-propagates through that fresh graph. Memory for a deep model falls from every layer's saved
// activations to one layer's plus each layer's input, for one extra forward pass of compute.
import TensorCore

/// Whether ops record their backward. Off inside a recomputed segment's first forward pass. Process-wide, like the
/// rest of the graph machinery: a graph is built by one thread at a time (kernels parallelise below it).
public enum GradientRecording {
    nonisolated(unsafe) public private(set) static var isEnabled = true

    /// Runs `body` with recording off: results carry values only, whatever their inputs require.
    public static func disabled<R>(_ body: () throws -> R) rethrows -> R {
        let previous = isEnabled
        isEnabled = false
        defer { isEnabled = previous }
        return try body()
    }
}

/// `body(inputs, &rng)` computed without keeping its intermediate activations: the forward pass records nothing
/// and saves only the inputs' values; backward replays `body` from the same values and the same random stream
/// position (so dropout draws the same masks), back-propagates through the replay, and passes the inputs'
/// gradients on. Parameters used inside `body` receive their gradients during that replay. `body` must be a pure
/// function of its inputs, the parameters and `rng`, and must not change the parameters between the two passes
/// (optimizers step after backward, so training satisfies this).
public func recomputed(_ inputs: [Variable], rng: inout RandomGenerator,
                       _ body: @escaping ([Variable], inout RandomGenerator) throws -> Variable) throws -> Variable {
    let start = rng
    let values = inputs.map(\.value), wantsGradient = inputs.map(\.requiresGrad)
    /// Leaves over the saved input values, each asking for a gradient where its input did.
    func leaves() -> [Variable] { zip(values, wantsGradient).map { Variable($0, requiresGrad: $1) } }
    let output = try GradientRecording.disabled { try body(leaves(), &rng) }
    // Without recording, `requiresGrad` still tells whether any input or parameter would send a gradient here.
    guard GradientRecording.isEnabled, output.requiresGrad else { return Variable(output.value) }
    return Variable(output.value, recordingOver: inputs) { [nodes = inputs.map(\.node)] dy in
        var replayRNG = start
        let fresh = leaves()
        let replay: Variable
        do { replay = try body(fresh, &replayRNG) } catch {
            preconditionFailure("recomputed segment failed on replay after succeeding in forward: \(error)")
        }
        replay.backward(seed: dy)
        for (node, input) in zip(nodes, fresh) where node.requiresGrad {
            if let g = input.grad { node.accumulate(g) }
        }
    }
}
