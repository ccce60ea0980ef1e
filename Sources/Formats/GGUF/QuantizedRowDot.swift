// Fused row·vector kernels for decoding (batch-1 products), Q4_0 / Q4_1 / Q8_0: each 32-element block is
// widened to Float32 in registers and multiplied into x with FMAs — no scratch row, no second pass — about one
// instruction per weight on AVX2 (the unpack-then-dot kernels of QuantizedKernels take ~3.5). x stays Float32
// (activations are not quantized), so results equal the dequantise-then-dot product up to summation order.
//
// `QuantizedMatrix.matvec(_:x:outputs:)` runs several matrices that share an input (q/k/v, gate/up) in one
// parallel region, so a decode step pays for one thread hand-off per group rather than per matrix.
import TensorCore

/// Block-fused dot products of one quantized row with a Float32 vector.
enum QuantizedRowDot {
    /// Σ_j W[row, j]·x[j] for a Q4_1 row (blocks × 20 B: f16 d, f16 m, 16 B nibbles; x = d·q + m).
    /// xsum[b] = Σ of x over block b.
    @inline(__always)
    static func q4_1(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var offsets: Float = 0
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let block = row + b * 20
            let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
            let m = Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            let s = nibbleDot(block.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self), rx + b * 128)
            acc = acc.addingProduct(s, d)
            offsets = offsets.addingProduct(m, xsum[b])
        }
        return acc.sum() + offsets
    }

    /// A Q4_0 row (blocks × 18 B: f16 d, 16 B nibbles; x = d·(q − 8)).
    @inline(__always)
    static func q4_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        var offsets: Float = 0
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let block = row + b * 18
            let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
            let s = nibbleDot(block.loadUnaligned(fromByteOffset: 2, as: SIMD16<UInt8>.self), rx + b * 128)
            acc = acc.addingProduct(s, d)
            offsets = offsets.addingProduct(-8 * d, xsum[b])
        }
        return acc.sum() + offsets
    }

    /// A Q8_0 row (blocks × 34 B: f16 d, 32 int8; x = d·q).
    @inline(__always)
    static func q8_0(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc = SIMD8<Float>()
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let block = row + b * 34
            let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
            let xb = rx + b * 128
            var s = SIMD8<Float>(block.loadUnaligned(fromByteOffset: 2, as: SIMD8<Int8>.self)) * xb.loadUnaligned(as: SIMD8<Float>.self)
            s = s.addingProduct(SIMD8<Float>(block.loadUnaligned(fromByteOffset: 10, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
            s = s.addingProduct(SIMD8<Float>(block.loadUnaligned(fromByteOffset: 18, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
            s = s.addingProduct(SIMD8<Float>(block.loadUnaligned(fromByteOffset: 26, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
            acc = acc.addingProduct(s, d)
        }
        return acc.sum()
    }

    /// Two Q4_1 rows against the same x (x is loaded once per block for both).
    @inline(__always)
    static func q4_1Pair(_ row0: UnsafeRawPointer, _ row1: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ xsum: UnsafePointer<Float>,
                         blocks: Int) -> (Float, Float) {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var offsets0: Float = 0, offsets1: Float = 0
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let b0 = row0 + b * 20, b1 = row1 + b * 20, xb = rx + b * 128
            let x0 = xb.loadUnaligned(as: SIMD8<Float>.self), x1 = xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            let x2 = xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), x3 = xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
            let s0 = nibbleDot(b0.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self), x0, x1, x2, x3)
            let s1 = nibbleDot(b1.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self), x0, x1, x2, x3)
            acc0 = acc0.addingProduct(s0, Float(Float16(bitPattern: b0.loadUnaligned(as: UInt16.self))))
            acc1 = acc1.addingProduct(s1, Float(Float16(bitPattern: b1.loadUnaligned(as: UInt16.self))))
            offsets0 = offsets0.addingProduct(Float(Float16(bitPattern: b0.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), xsum[b])
            offsets1 = offsets1.addingProduct(Float(Float16(bitPattern: b1.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), xsum[b])
        }
        return (acc0.sum() + offsets0, acc1.sum() + offsets1)
    }

    /// Two Q8_0 rows against the same x.
    @inline(__always)
    static func q8_0Pair(_ row0: UnsafeRawPointer, _ row1: UnsafeRawPointer, _ x: UnsafePointer<Float>, blocks: Int) -> (Float, Float) {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        let rx = UnsafeRawPointer(x)
        for b in 0..<blocks {
            let b0 = row0 + b * 34, b1 = row1 + b * 34, xb = rx + b * 128
            let x0 = xb.loadUnaligned(as: SIMD8<Float>.self), x1 = xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self)
            let x2 = xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self), x3 = xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self)
            acc0 = acc0.addingProduct(int8Dot(b0 + 2, x0, x1, x2, x3), Float(Float16(bitPattern: b0.loadUnaligned(as: UInt16.self))))
            acc1 = acc1.addingProduct(int8Dot(b1 + 2, x0, x1, x2, x3), Float(Float16(bitPattern: b1.loadUnaligned(as: UInt16.self))))
        }
        return (acc0.sum(), acc1.sum())
    }

    /// Σ q·x over 32 int8 quants at `qs`, unscaled.
    @inline(__always)
    private static func int8Dot(_ qs: UnsafeRawPointer, _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>, _ x3: SIMD8<Float>) -> SIMD8<Float> {
        var s = SIMD8<Float>(qs.loadUnaligned(as: SIMD8<Int8>.self)) * x0
        s = s.addingProduct(SIMD8<Float>(qs.loadUnaligned(fromByteOffset: 8, as: SIMD8<Int8>.self)), x1)
        s = s.addingProduct(SIMD8<Float>(qs.loadUnaligned(fromByteOffset: 16, as: SIMD8<Int8>.self)), x2)
        s = s.addingProduct(SIMD8<Float>(qs.loadUnaligned(fromByteOffset: 24, as: SIMD8<Int8>.self)), x3)
        return s
    }

    /// Σ q·x over one 32-element block of nibbles with x's four 8-lane pieces given.
    @inline(__always)
    private static func nibbleDot(_ qs: SIMD16<UInt8>, _ x0: SIMD8<Float>, _ x1: SIMD8<Float>, _ x2: SIMD8<Float>, _ x3: SIMD8<Float>) -> SIMD8<Float> {
        let lo = qs & 0x0F, hi = qs &>> 4
        var s = SIMD8<Float>(lo.lowHalf) * x0
        s = s.addingProduct(SIMD8<Float>(lo.highHalf), x1)
        s = s.addingProduct(SIMD8<Float>(hi.lowHalf), x2)
        s = s.addingProduct(SIMD8<Float>(hi.highHalf), x3)
        return s
    }

    /// Σ q·x over one 32-element block of nibbles (low nibbles are elements 0–15, high ones 16–31), unscaled.
    @inline(__always)
    private static func nibbleDot(_ qs: SIMD16<UInt8>, _ xb: UnsafeRawPointer) -> SIMD8<Float> {
        let lo = qs & 0x0F, hi = qs &>> 4
        var s = SIMD8<Float>(lo.lowHalf) * xb.loadUnaligned(as: SIMD8<Float>.self)
        s = s.addingProduct(SIMD8<Float>(lo.highHalf), xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
        s = s.addingProduct(SIMD8<Float>(hi.lowHalf), xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
        s = s.addingProduct(SIMD8<Float>(hi.highHalf), xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
        return s
    }
}

extension QuantizedMatrix {
    /// Whether this type has a fused row kernel (Q4_0, Q4_1, Q8_0); others dequantise a row at a time.
    public var hasFusedRowKernel: Bool { type == .q4_0 || type == .q4_1 || type == .q8_0 }

    /// outputs[i] = matrices[i]·x for matrices that share x (equal column counts), all rows split across cores in
    /// one parallel region. x: [columns]; outputs[i]: [matrices[i].rows].
    public static func matvec(_ matrices: [QuantizedMatrix], x: UnsafePointer<Float>, outputs: [UnsafeMutablePointer<Float>]) {
        precondition(matrices.count == outputs.count, "matvec: \(matrices.count) matrices but \(outputs.count) outputs")
        guard let columns = matrices.first?.columns else { return }
        precondition(matrices.allSatisfy { $0.columns == columns }, "matvec: matrices must share the column count")
        guard columns > 0 else {
            for (m, o) in zip(matrices, outputs) { o.update(repeating: 0, count: m.rows) }
            return
        }
        let blocks = columns / 32
        let xsum = UnsafeMutablePointer<Float>.allocate(capacity: max(blocks, 1))
        defer { xsum.deallocate() }
        if matrices.contains(where: { $0.type == .q4_0 || $0.type == .q4_1 }) { QuantizedKernels.blockSums(x, blocks: blocks, into: xsum) }
        // Global row index → (matrix, local row) through cumulative starts.
        var starts: [Int] = []
        var total = 0
        for m in matrices { starts.append(total); total += m.rows }
        let minRows = max(1, 32_768 / columns)
        Parallel.forBalancedRanges(total, minChunk: minRows) { range in
            var scratch: UnsafeMutablePointer<Float>?
            defer { scratch?.deallocate() }
            var i = starts.lastIndex { $0 <= range.lowerBound } ?? 0
            var r = range.lowerBound
            while r < range.upperBound {
                let m = matrices[i], out = outputs[i], local0 = r - starts[i]
                let end = min(range.upperBound, starts[i] + m.rows)
                let base = m.base, rowBytes = m.rowBytes
                switch m.type {
                case .q4_1:
                    var local = local0
                    let stop = local0 + end - r
                    while local + 1 < stop {
                        (out[local], out[local + 1]) = QuantizedRowDot.q4_1Pair(base + local * rowBytes, base + (local + 1) * rowBytes, x, xsum, blocks: blocks)
                        local += 2
                    }
                    if local < stop { out[local] = QuantizedRowDot.q4_1(base + local * rowBytes, x, xsum, blocks: blocks) }
                case .q4_0:
                    for local in local0..<(local0 + end - r) { out[local] = QuantizedRowDot.q4_0(base + local * rowBytes, x, xsum, blocks: blocks) }
                case .q8_0:
                    var local = local0
                    let stop = local0 + end - r
                    while local + 1 < stop {
                        (out[local], out[local + 1]) = QuantizedRowDot.q8_0Pair(base + local * rowBytes, base + (local + 1) * rowBytes, x, blocks: blocks)
                        local += 2
                    }
                    if local < stop { out[local] = QuantizedRowDot.q8_0(base + local * rowBytes, x, blocks: blocks) }
                default:
                    if scratch == nil { scratch = .allocate(capacity: columns) }
                    for local in local0..<(local0 + end - r) {
                        GGMLDequantizer.dequantize(m.type, from: base + local * rowBytes, count: columns, into: scratch!)
                        out[local] = QuantizedKernels.dot(scratch!, x, columns)
                    }
                }
                r = end
                i += 1
            }
        }
    }
}
