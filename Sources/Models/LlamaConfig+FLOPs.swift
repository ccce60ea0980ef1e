// Floating-point work of one adapter-training step, for reporting achieved GFLOP/s. Counted as a GEMM-bound
// transformer: 2·m·n·k per product, elementwise work ignored. With a frozen base, backward needs dX of every
// projection (one product the size of the forward one) but no dW; adapters add their own small products.

extension LlamaConfig {
    /// FLOPs of the frozen base in one forward pass over `rows` sequences of `length` tokens, with the output head
    /// on `headRows` positions (the rows that carry a target; the fused loss skips the rest).
    public func forwardFLOPs(rows: Int, length: Int, headRows: Int) -> Double {
        let tokens = Double(rows * length)
        let h = Double(hiddenSize)
        let projections = h * Double(queryWidth) * 2 + h * Double(kvWidth) * 2 + 3 * h * Double(intermediateSize)
        // QKᵀ and P·V per head over the full [length, length] square (causal masking does not skip work).
        let attention = 2 * 2 * Double(rows) * Double(length * length) * Double(headDim) * Double(headCount)
        let head = 2 * Double(headRows) * h * Double(vocabSize)
        return Double(layerCount) * (2 * tokens * projections + attention) + head
    }

    /// FLOPs of one training step (forward + backward) of adapters on a frozen base: forward, then dX of every
    /// product (the same again; attention's backward is two products per forward one), plus the fused loss's
    /// recomputation of the head logits in backward. `adapterFLOPs` is the adapters' forward work (×3 for
    /// forward, dX and dW).
    public func trainingStepFLOPs(rows: Int, length: Int, headRows: Int, adapterFLOPs: Double = 0) -> Double {
        let attention = Double(layerCount) * 2 * 2 * Double(rows) * Double(length * length) * Double(headDim) * Double(headCount)
        let head = 2 * Double(headRows) * Double(hiddenSize) * Double(vocabSize)
        let forward = forwardFLOPs(rows: rows, length: length, headRows: headRows)
        // backward: projections' dX (= forward minus attention and head), attention ×2, head: recompute + dX
        let backward = (forward - attention - head) + 2 * attention + 2 * head
        return forward + backward + 3 * adapterFLOPs
    }
}
