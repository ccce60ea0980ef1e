// Row normalisations: RMSNorm (Llama) and LayerNorm (BERT), forward and backward on raw buffers.
//
// Every array is row-major [rows, dim]; one row is one token's hidden vector. Forward saves the
// per-row statistics backward needs (rstd, and the mean for LayerNorm). Backward *writes* (not adds)
// its outputs; a nil output is skipped, so frozen weights cost no reduction over rows.

/// RMSNorm forward, Hugging Face Llama semantics in Float32: `out = weight ⊙ (x · rstd)`,
/// `rstd = 1 / sqrt(mean(x²) + eps)`. x, out: [rows, dim]; weight: [dim]; rstdOut: [rows] (optional).
public func rmsNormForward(out: UnsafeMutablePointer<Float>, rstdOut: UnsafeMutablePointer<Float>?,
                           x: UnsafePointer<Float>, weight: UnsafePointer<Float>, rows: Int, dim: Int, eps: Float) {
    Parallel.forRanges(rows, minChunk: normMinRowsPerChunk(dim)) { range in
        for r in range {
            let xr = x + r * dim, yr = out + r * dim
            let rstd = 1 / (rowSumOfSquares(xr, dim) / Float(dim) + eps).squareRoot()
            rstdOut?[r] = rstd
            for i in 0..<dim { yr[i] = weight[i] * (xr[i] * rstd) }
        }
    }
}

/// RMSNorm backward. With g = dOut ⊙ weight and r = rstd of the row:
/// `dx = r·g − x · r³ · (g·x) / dim`, `dWeight = Σ_rows dOut ⊙ x · r`.
/// dOut, x, dx: [rows, dim]; weight, dWeight: [dim]; rstd: [rows] from the forward pass.
public func rmsNormBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                            dOut: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                            rstd: UnsafePointer<Float>, rows: Int, dim: Int) {
    if let dx = dx {
        Parallel.forRanges(rows, minChunk: normMinRowsPerChunk(dim)) { range in
            for r in range {
                let xr = x + r * dim, gr = dOut + r * dim, dxr = dx + r * dim
                let s = rstd[r]
                let c = s * s * s * rowTripleDot(gr, weight, xr, dim) / Float(dim)  // Σ dOut·weight·x
                for i in 0..<dim { dxr[i] = s * (gr[i] * weight[i]) - c * xr[i] }
            }
        }
    }
    if let dWeight = dWeight {
        sumOverRowChunks(rows: rows, dim: dim, outputs: [dWeight]) { range, partials in
            let dw = partials[0]
            for r in range {
                let xr = x + r * dim, gr = dOut + r * dim, s = rstd[r]
                for i in 0..<dim { dw[i] += gr[i] * (xr[i] * s) }
            }
        }
    }
}

/// LayerNorm forward as PyTorch (biased variance): `out = (x − mean) · rstd ⊙ weight + bias`.
/// x, out: [rows, dim]; weight, bias: [dim] (nil = 1 and 0); meanOut, rstdOut: [rows] (optional).
public func layerNormForward(out: UnsafeMutablePointer<Float>, meanOut: UnsafeMutablePointer<Float>?,
                             rstdOut: UnsafeMutablePointer<Float>?, x: UnsafePointer<Float>,
                             weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                             rows: Int, dim: Int, eps: Float) {
    Parallel.forRanges(rows, minChunk: normMinRowsPerChunk(dim)) { range in
        for r in range {
            let xr = x + r * dim, yr = out + r * dim
            // Mean of the row shifted by its first element (exact differences for rows far from zero), then the
            // variance from the deviations: no cancellation even when |mean| ≫ std.
            // Deviations as (x − shift) − (mean − shift): both differences are small and exact or nearly so.
            let shift = dim > 0 ? xr[0] : 0
            let shiftedMean = rowShiftedSum(xr, shift, dim) / Float(dim)
            let mean = shift + shiftedMean
            for i in 0..<dim { yr[i] = (xr[i] - shift) - shiftedMean }
            let rstd = 1 / (rowSumOfSquares(UnsafePointer(yr), dim) / Float(dim) + eps).squareRoot()
            meanOut?[r] = mean
            rstdOut?[r] = rstd
            switch (weight, bias) {
            case let (w?, b?): for i in 0..<dim { yr[i] = yr[i] * rstd * w[i] + b[i] }
            case let (w?, nil): for i in 0..<dim { yr[i] = yr[i] * rstd * w[i] }
            case let (nil, b?): for i in 0..<dim { yr[i] = yr[i] * rstd + b[i] }
            case (nil, nil): for i in 0..<dim { yr[i] = yr[i] * rstd }
            }
        }
    }
}

/// LayerNorm backward. With x̂ = (x − mean)·rstd and g = dOut ⊙ weight:
/// `dx = rstd · (g − mean(g) − x̂ · mean(g ⊙ x̂))`, `dWeight = Σ_rows dOut ⊙ x̂`, `dBias = Σ_rows dOut`.
/// Shapes as in `layerNormForward`; mean and rstd are the forward pass's saved statistics.
public func layerNormBackward(dx: UnsafeMutablePointer<Float>?, dWeight: UnsafeMutablePointer<Float>?,
                              dBias: UnsafeMutablePointer<Float>?, dOut: UnsafePointer<Float>, x: UnsafePointer<Float>,
                              weight: UnsafePointer<Float>?, mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
                              rows: Int, dim: Int) {
    if let dx = dx {
        Parallel.forRanges(rows, minChunk: normMinRowsPerChunk(dim)) { range in
            for r in range {
                let xr = x + r * dim, gr = dOut + r * dim, dxr = dx + r * dim
                let mu = mean[r], s = rstd[r]
                // dx row doubles as scratch for g = dOut ⊙ weight.
                if let w = weight { for i in 0..<dim { dxr[i] = gr[i] * w[i] } } else { dxr.update(from: gr, count: dim) }
                let sumG = rowSum(dxr, dim), sumGX = s * rowCenteredDot(dxr, xr, mu, dim)  // Σ g, Σ g·x̂
                let meanG = sumG / Float(dim), meanGX = sumGX / Float(dim)
                for i in 0..<dim { dxr[i] = s * (dxr[i] - meanG - (xr[i] - mu) * s * meanGX) }
            }
        }
    }
    let outputs = [dWeight, dBias].compactMap { $0 }
    guard !outputs.isEmpty else { return }
    sumOverRowChunks(rows: rows, dim: dim, outputs: outputs) { range, partials in
        let dw: UnsafeMutablePointer<Float>? = dWeight == nil ? nil : partials[0]
        let db: UnsafeMutablePointer<Float>? = dBias == nil ? nil : partials[dWeight == nil ? 0 : 1]
        for r in range {
            let xr = x + r * dim, gr = dOut + r * dim, mu = mean[r], s = rstd[r]
            if let dw = dw { for i in 0..<dim { dw[i] += gr[i] * ((xr[i] - mu) * s) } }
            if let db = db { for i in 0..<dim { db[i] += gr[i] } }
        }
    }
}

// MARK: - Shared pieces

/// Rows per parallel chunk: ~16k elements of work per chunk before a thread pays for itself.
private func normMinRowsPerChunk(_ dim: Int) -> Int { max(1, (1 << 14) / max(dim, 1)) }

/// Column sums over rows (weight/bias gradients) without write conflicts: each chunk of rows adds into its
/// own zeroed [dim] partial per output, then the partials are summed in chunk order (deterministic).
private func sumOverRowChunks(rows: Int, dim: Int, outputs: [UnsafeMutablePointer<Float>],
                              body: (Range<Int>, [UnsafeMutablePointer<Float>]) -> Void) {
    let chunks = max(1, min(Parallel.threadCount, rows / max(1, normMinRowsPerChunk(dim))))
    let partials = UnsafeMutablePointer<Float>.allocate(capacity: chunks * outputs.count * dim)
    defer { partials.deallocate() }
    partials.initialize(repeating: 0, count: chunks * outputs.count * dim)
    Parallel.forRanges(chunks) { chunkRange in
        for c in chunkRange {
            let base = partials + c * outputs.count * dim
            body(rows * c / chunks ..< rows * (c + 1) / chunks, (0..<outputs.count).map { base + $0 * dim })
        }
    }
    for (o, out) in outputs.enumerated() {
        out.update(from: partials + o * dim, count: dim)
        for c in 1..<max(chunks, 1) {
            let p = partials + (c * outputs.count + o) * dim
            for i in 0..<dim { out[i] += p[i] }
        }
    }
}

/// Σ p[i], eight independent lanes so the loop vectorises (a single accumulator cannot be reordered).
@inline(__always)
private func rowSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i + 8 <= n { acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self); i += 8 }
    var s = acc.sum()
    while i < n { s += p[i]; i += 1 }
    return s
}

/// Σ (p[i] − shift), vectorised as `rowSum`.
@inline(__always)
private func rowShiftedSum(_ p: UnsafePointer<Float>, _ shift: Float, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let raw = UnsafeRawPointer(p), c = SIMD8<Float>(repeating: shift)
    var i = 0
    while i + 8 <= n { acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - c; i += 8 }
    var s = acc.sum()
    while i < n { s += p[i] - shift; i += 1 }
    return s
}

/// Σ a[i]·(b[i] − center), vectorised as `rowSum` (centred first: no cancellation when b has a large mean).
@inline(__always)
private func rowCenteredDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ center: Float, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), c = SIMD8<Float>(repeating: center)
    var i = 0
    while i + 8 <= n {
        acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * (rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - c)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * (b[i] - center); i += 1 }
    return s
}

/// Σ a[i]·b[i]·c[i], vectorised as `rowSum`.
@inline(__always)
private func rowTripleDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b), rc = UnsafeRawPointer(c)
    var i = 0
    while i + 8 <= n {
        acc += ra.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rb.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            * rc.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    var s = acc.sum()
    while i < n { s += a[i] * b[i] * c[i]; i += 1 }
    return s
}

/// Σ p[i]², vectorised as `rowSum`.
@inline(__always)
private func rowSumOfSquares(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc = SIMD8<Float>(repeating: 0)
    let raw = UnsafeRawPointer(p)
    var i = 0
    while i + 8 <= n {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        acc += v * v
        i += 8
    }
    var s = acc.sum()
    while i < n { s += p[i] * p[i]; i += 1 }
    return s
}
