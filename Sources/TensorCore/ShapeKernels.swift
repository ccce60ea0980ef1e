// Data movement: transpose, permute (rank ≤ 4), slice and concat along a dimension, row gather
// (embedding lookup) and its scatter-add. Contiguous runs are copied with memcpy-style updates.

extension Tensor {
    /// Transpose of a 2-D tensor: [m, n] → [n, m], in cache-sized tiles.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed() needs a 2-D tensor, got \(shape)")
        let m = shape[0], n = shape[1]
        return withUnsafeBufferPointer { src in
            Tensor(shape: [n, m]) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                let tile = 32
                Parallel.forRanges((m + tile - 1) / tile, minChunk: max(1, 4096 / max(n, 1))) { tiles in
                    for ti in tiles {
                        let i0 = ti * tile, i1 = Swift.min(m, i0 + tile)
                        var j0 = 0
                        while j0 < n {
                            let j1 = Swift.min(n, j0 + tile)
                            for i in i0..<i1 { for j in j0..<j1 { o[j * m + i] = x[i * n + j] } }
                            j0 = j1
                        }
                    }
                }
            }
        }
    }

    /// Dimensions reordered: result dimension d is source dimension `permutation[d]` (like torch.permute).
    /// Rank ≤ 4; e.g. [B, T, H, D].permuted([0, 2, 1, 3]) → [B, H, T, D].
    public func permuted(_ permutation: [Int]) -> Tensor {
        precondition(permutation.count == rank && rank <= 4 && Set(permutation) == Set(0..<rank),
                     "permuted: \(permutation) is not a permutation of the \(rank) dimensions of \(shape) (rank ≤ 4)")
        if permutation == Array(0..<rank) { return self }
        // Pad to rank 4 with leading size-1 dimensions so one loop nest serves every rank.
        let pad = 4 - rank
        let dims = Array(repeating: 1, count: pad) + shape
        let perm = Array(0..<pad) + permutation.map { $0 + pad }
        var strides = [Int](repeating: 1, count: 4)
        for d in stride(from: 2, through: 0, by: -1) { strides[d] = strides[d + 1] * dims[d + 1] }
        let outDims = perm.map { dims[$0] }, s = perm.map { strides[$0] }
        let (n0, n1, n2, n3) = (outDims[0], outDims[1], outDims[2], outDims[3])
        let (s0, s1, s2, s3) = (s[0], s[1], s[2], s[3])
        return withUnsafeBufferPointer { src in
            Tensor(shape: permutation.map { shape[$0] }) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                Parallel.forRanges(n0 * n1, minChunk: max(1, elementwiseParallelChunk / max(n2 * n3, 1))) { r in
                    for ab in r {
                        let a = ab / n1, b = ab % n1
                        let base = a * s0 + b * s1
                        var dst = o + ab * n2 * n3
                        for c in 0..<n2 {
                            let rowBase = x + base + c * s2
                            if s3 == 1 {
                                dst.update(from: rowBase, count: n3)  // innermost dimension kept: contiguous copy
                            } else {
                                for d in 0..<n3 { dst[d] = rowBase[d * s3] }
                            }
                            dst += n3
                        }
                    }
                }
            }
        }
    }

    /// Sub-tensor with `range` along `dimension` (negative counts from the end).
    public func sliced(dimension: Int, range: Range<Int>) -> Tensor {
        let d = dimension < 0 ? rank + dimension : dimension
        precondition(d >= 0 && d < rank && range.lowerBound >= 0 && range.upperBound <= shape[d],
                     "sliced: range \(range) on dimension \(dimension) out of bounds for \(shape)")
        let outer = shape[..<d].reduce(1, *), inner = shape[(d + 1)...].reduce(1, *), len = shape[d]
        var newShape = shape
        newShape[d] = range.count
        return withUnsafeBufferPointer { src in
            Tensor(shape: newShape) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                let run = range.count * inner
                for i in 0..<outer where run > 0 {
                    (o + i * run).update(from: x + (i * len + range.lowerBound) * inner, count: run)
                }
            }
        }
    }

    /// In place: adds `part` into the `range` of `dimension` (the backward of `sliced`).
    public mutating func addSlice(_ part: Tensor, dimension: Int, range: Range<Int>) {
        let d = dimension < 0 ? rank + dimension : dimension
        var expected = shape
        precondition(d >= 0 && d < rank && range.upperBound <= shape[d] && range.lowerBound >= 0,
                     "addSlice: range \(range) out of bounds for \(shape)")
        expected[d] = range.count
        precondition(part.shape == expected, "addSlice: part \(part.shape) does not fit \(expected)")
        let outer = shape[..<d].reduce(1, *), inner = shape[(d + 1)...].reduce(1, *), len = shape[d]
        let run = range.count * inner
        part.withUnsafeBufferPointer { src in withUnsafeMutableBufferPointer { dst in
            let x = src.baseAddress!, o = dst.baseAddress!
            for i in 0..<outer {
                let from = x + i * run, to = o + (i * len + range.lowerBound) * inner
                for j in 0..<run { to[j] += from[j] }
            }
        } }
    }

    /// Tensors joined along `dimension`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], dimension: Int) -> Tensor {
        precondition(!parts.isEmpty, "concat needs at least one tensor")
        let first = parts[0]
        let d = dimension < 0 ? first.rank + dimension : dimension
        precondition(d >= 0 && d < first.rank, "concat: dimension \(dimension) out of range for \(first.shape)")
        for p in parts {
            var a = p.shape, b = first.shape
            precondition(a.count == b.count, "concat: rank of \(p.shape) differs from \(first.shape)")
            a[d] = 0; b[d] = 0
            precondition(a == b, "concat: \(p.shape) and \(first.shape) differ outside dimension \(d)")
        }
        var newShape = first.shape
        newShape[d] = parts.reduce(0) { $0 + $1.shape[d] }
        let outer = first.shape[..<d].reduce(1, *), inner = first.shape[(d + 1)...].reduce(1, *)
        let outRun = newShape[d] * inner
        return Tensor(shape: newShape) { out in
            let o = out.baseAddress!
            var offset = 0
            for p in parts {
                let run = p.shape[d] * inner
                p.withUnsafeBufferPointer { src in
                    let x = src.baseAddress!
                    for i in 0..<outer where run > 0 { (o + i * outRun + offset).update(from: x + i * run, count: run) }
                }
                offset += run
            }
        }
    }

    /// Rows of a 2-D table picked by `ids`: table [V, D], ids n → [n, D]. Throws on an id outside 0..<V.
    public func gatherRows(_ ids: [Int32]) throws -> Tensor {
        precondition(rank == 2, "gatherRows needs a 2-D table, got \(shape)")
        let v = shape[0], dd = shape[1]
        for (i, id) in ids.enumerated() where id < 0 || Int(id) >= v {
            throw TensorError.invalidArgument(operation: "embedding lookup",
                                              reason: "id \(id) at position \(i) is outside the table's \(v) rows")
        }
        return ids.withUnsafeBufferPointer { idp in withUnsafeBufferPointer { src in
            Tensor(shape: [ids.count, dd]) { out in
                let x = src.baseAddress!, o = out.baseAddress!
                for i in 0..<idp.count where dd > 0 { (o + i * dd).update(from: x + Int(idp[i]) * dd, count: dd) }
            }
        } }
    }

    /// In place: row ids[i] of this [V, D] table += rows[i] (the backward of `gatherRows`; ids already checked).
    public mutating func scatterAddRows(_ rows: Tensor, ids: [Int32]) {
        precondition(rank == 2 && rows.count == ids.count * shape[1], "scatterAddRows: \(rows.shape) vs \(ids.count) ids into \(shape)")
        let dd = shape[1]
        ids.withUnsafeBufferPointer { idp in rows.withUnsafeBufferPointer { src in withUnsafeMutableBufferPointer { dst in
            let x = src.baseAddress!, o = dst.baseAddress!
            for i in 0..<idp.count {
                let to = o + Int(idp[i]) * dd, from = x + i * dd
                for j in 0..<dd { to[j] += from[j] }
            }
        } } }
    }
}
