// The inference product of an adapted layer on raw buffers: no Variables, no graph, no per-call tensors
// beyond a rank-sized scratch. Same result as `forward(_:rng:training: false)` (dropout is off in inference).
import TensorCore
import Autograd
import Formats

extension AdaptedLinear {
    /// out [rows, outFeatures] = x [rows, inFeatures]·Wᵀ + b + Σ active adapter branches (none when disabled or
    /// merged), overwriting `out`. A dense base is one BLAS call; a quantized one uses the block kernels for a
    /// few rows and dequantised tiles with BLAS for many.
    public func apply(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        guard rows > 0 else { return }
        if adaptersDisabled && !mergedAdapterNames.isEmpty { unmerge() }  // as forward: never leave ΔW in W
        let (inF, outF) = (inFeatures, outFeatures)
        switch base {
        case .dense(let w):
            w.value.withUnsafeBufferPointer { pw in
                BLAS.gemm(.none, .transposed, m: rows, n: outF, k: inF, a: x, lda: inF, b: pw.baseAddress!, ldb: inF,
                          c: out, ldc: outF)
            }
        case .quantized(let q):
            QuantizedProducts.forward(q, x: x, rows: rows, out: out)
        }
        finishApply(x: x, rows: rows, out: out)
    }

    /// `apply` for several layers reading the same x (q/k/v, gate/up). For a few rows (one decode step of one or
    /// several sequences) and quantized bases the base products run in one parallel region; otherwise layer by layer.
    public static func apply(_ layers: [AdaptedLinear], x: UnsafePointer<Float>, rows: Int, outputs: [UnsafeMutablePointer<Float>]) {
        precondition(layers.count == outputs.count, "apply: \(layers.count) layers but \(outputs.count) outputs")
        let bases = layers.compactMap(\.quantizedWeight)
        guard rows >= 1, rows < QuantizedProducts.gemmRowThreshold, bases.count == layers.count, bases.allSatisfy(\.hasFusedRowKernel),
              layers.allSatisfy({ $0.inFeatures == layers[0].inFeatures }) else {
            for (layer, out) in zip(layers, outputs) { layer.apply(x: x, rows: rows, out: out) }
            return
        }
        for layer in layers where layer.adaptersDisabled && !layer.mergedAdapterNames.isEmpty { layer.unmerge() }
        // Same row kernels as `apply` takes for these row counts, so the grouped and per-layer results are equal.
        QuantizedMatrix.matvec(bases, x: x, batch: rows, outputs: outputs)
        for (layer, out) in zip(layers, outputs) { layer.finishApply(x: x, rows: rows, out: out) }
    }

    /// Adds the bias and the active adapter branches to a base product in `out`.
    private func finishApply(x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        if let b = bias?.value { QuantizedProducts.addBias(b, rows: rows, out: out) }
        guard !adaptersDisabled, mergedAdapterNames.isEmpty else { return }
        if let names = rowAdapterNames, !names.isEmpty, rows % names.count == 0 {
            // Mixed-adapter batch: consecutive groups of rows (one per sequence) take their own adapter.
            let per = rows / names.count
            for (group, name) in names.enumerated() {
                guard let branch = adapter(named: name) else { continue }  // "__base__" or absent here: base only
                addAnyBranch(branch, x: x + group * per * inFeatures, rows: per, out: out + group * per * outFeatures)
            }
            return
        }
        for name in activeAdapterNames {
            guard let branch = adapter(named: name) else { continue }
            addAnyBranch(branch, x: x, rows: rows, out: out)
        }
    }

    private func addAnyBranch(_ branch: AdapterBranch, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        if let lora = branch as? LoRABranch {
            addLoRA(lora, x: x, rows: rows, out: out)
        } else if let dora = branch as? DoRABranch {
            dora.addInference(x: x, rows: rows, out: out, bias: bias?.value)
        } else {
            addBranch(branch, x: x, rows: rows, out: out)
        }
    }

    /// out += s·(x·Aᵀ)·Bᵀ with two small GEMMs through a [rows, r] scratch.
    private func addLoRA(_ lora: LoRABranch, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        let r = lora.rank, (inF, outF) = (inFeatures, outFeatures)
        guard r > 0 else { return }
        let down = UnsafeMutablePointer<Float>.allocate(capacity: rows * r)
        defer { down.deallocate() }
        lora.a.value.withUnsafeBufferPointer { pa in lora.b.value.withUnsafeBufferPointer { pb in
            BLAS.gemm(.none, .transposed, m: rows, n: r, k: inF, alpha: lora.scaling, a: x, lda: inF,
                      b: pa.baseAddress!, ldb: inF, c: down, ldc: r)
            BLAS.gemm(.none, .transposed, m: rows, n: outF, k: r, a: down, lda: r, b: pb.baseAddress!, ldb: r,
                      beta: 1, c: out, ldc: outF)
        } }
    }

    /// Any other adapter kind: its own (autograd) forward on a copy of x, added to out.
    private func addBranch(_ branch: AdapterBranch, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        let input = Tensor(shape: [rows, inFeatures]) { $0.baseAddress!.update(from: x, count: rows * inFeatures) }
        var rng = RandomGenerator(seed: 0)  // unused: no dropout outside training
        let y = branch.forward(Variable(input), rng: &rng, training: false).value
        y.withUnsafeBufferPointer { py in for i in 0..<(rows * outFeatures) { out[i] += py[i] } }
    }
}
