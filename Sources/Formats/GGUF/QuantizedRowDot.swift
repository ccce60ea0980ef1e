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
        // Two accumulators (even and odd blocks) so consecutive blocks' FMAs do not wait on each other.
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        var offsets: Float = 0
        let rx = UnsafeRawPointer(x)
        var b = 0
        while b + 1 < blocks {
            let block0 = row + b * 20, block1 = block0 + 20
            let s0 = nibbleDot(block0.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self), rx + b * 128)
            let s1 = nibbleDot(block1.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self), rx + b * 128 + 128)
            acc0 = acc0.addingProduct(s0, Float(Float16(bitPattern: block0.loadUnaligned(as: UInt16.self))))
            acc1 = acc1.addingProduct(s1, Float(Float16(bitPattern: block1.loadUnaligned(as: UInt16.self))))
            offsets = offsets.addingProduct(Float(Float16(bitPattern: block0.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), xsum[b])
            offsets = offsets.addingProduct(Float(Float16(bitPattern: block1.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), xsum[b + 1])
            b += 2
        }
        if b < blocks {
            let block = row + b * 20
            let s = nibbleDot(block.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self), rx + b * 128)
            acc0 = acc0.addingProduct(s, Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self))))
            offsets = offsets.addingProduct(Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), xsum[b])
        }
        return (acc0 + acc1).sum() + offsets
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
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        let rx = UnsafeRawPointer(x)
        var b = 0
        while b + 1 < blocks {
            let block0 = row + b * 34, block1 = block0 + 34
            acc0 = acc0.addingProduct(int8Dot(block0 + 2, rx + b * 128), Float(Float16(bitPattern: block0.loadUnaligned(as: UInt16.self))))
            acc1 = acc1.addingProduct(int8Dot(block1 + 2, rx + b * 128 + 128), Float(Float16(bitPattern: block1.loadUnaligned(as: UInt16.self))))
            b += 2
        }
        if b < blocks {
            let block = row + b * 34
            acc0 = acc0.addingProduct(int8Dot(block + 2, rx + b * 128), Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self))))
        }
        return (acc0 + acc1).sum()
    }

    /// Σ q·x over 32 int8 quants at `qs`, unscaled.
    @inline(__always)
    private static func int8Dot(_ qs: UnsafeRawPointer, _ xb: UnsafeRawPointer) -> SIMD8<Float> {
        var s = SIMD8<Float>(qs.loadUnaligned(as: SIMD8<Int8>.self)) * xb.loadUnaligned(as: SIMD8<Float>.self)
        s = s.addingProduct(SIMD8<Float>(qs.loadUnaligned(fromByteOffset: 8, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 32, as: SIMD8<Float>.self))
        s = s.addingProduct(SIMD8<Float>(qs.loadUnaligned(fromByteOffset: 16, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 64, as: SIMD8<Float>.self))
        s = s.addingProduct(SIMD8<Float>(qs.loadUnaligned(fromByteOffset: 24, as: SIMD8<Int8>.self)), xb.loadUnaligned(fromByteOffset: 96, as: SIMD8<Float>.self))
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
    /// one parallel region. x: [batch, columns]; outputs[i]: [batch, matrices[i].rows].
    ///
    /// With batch > 1 (several sequences decoding together) each weight row is read once and dotted with every
    /// row of x while it sits in L1, instead of streaming the whole matrix once per sequence. Each output is the
    /// very same row kernel on the same inputs as batch 1, so a batched row is bit-identical to its batch-1 run.
    public static func matvec(_ matrices: [QuantizedMatrix], x: UnsafePointer<Float>, batch: Int = 1,
                              outputs: [UnsafeMutablePointer<Float>]) {
        precondition(matrices.count == outputs.count, "matvec: \(matrices.count) matrices but \(outputs.count) outputs")
        guard let columns = matrices.first?.columns, batch > 0 else { return }
        precondition(matrices.allSatisfy { $0.columns == columns }, "matvec: matrices must share the column count")
        guard columns > 0 else {
            for (m, o) in zip(matrices, outputs) { o.update(repeating: 0, count: batch * m.rows) }
            return
        }
        let blocks = columns / 32
        let xsum = UnsafeMutablePointer<Float>.allocate(capacity: batch * max(blocks, 1))
        defer { xsum.deallocate() }
        if matrices.contains(where: { $0.type == .q4_0 || $0.type == .q4_1 }) {
            for b in 0..<batch { QuantizedKernels.blockSums(x + b * columns, blocks: blocks, into: xsum + b * max(blocks, 1)) }
        }
        let xsumStride = max(blocks, 1)
        // Global row index → (matrix, local row) through cumulative starts.
        var starts: [Int] = []
        var total = 0
        for m in matrices { starts.append(total); total += m.rows }
        let minRows = max(1, 32_768 / (columns * batch))
        Parallel.forBalancedRanges(total, minChunk: minRows) { range in
            var scratch: UnsafeMutablePointer<Float>?
            defer { scratch?.deallocate() }
            var i = starts.lastIndex { $0 <= range.lowerBound } ?? 0
            var r = range.lowerBound
            while r < range.upperBound {
                let m = matrices[i], out = outputs[i], local0 = r - starts[i], n = m.rows
                let end = min(range.upperBound, starts[i] + m.rows)
                let base = m.base, rowBytes = m.rowBytes
                switch m.type {
                case .q4_1:
                    for local in local0..<(local0 + end - r) {
                        let row = base + local * rowBytes
                        for b in 0..<batch { out[b * n + local] = QuantizedRowDot.q4_1(row, x + b * columns, xsum + b * xsumStride, blocks: blocks) }
                    }
                case .q4_0:
                    for local in local0..<(local0 + end - r) {
                        let row = base + local * rowBytes
                        for b in 0..<batch { out[b * n + local] = QuantizedRowDot.q4_0(row, x + b * columns, xsum + b * xsumStride, blocks: blocks) }
                    }
                case .q8_0:
                    for local in local0..<(local0 + end - r) {
                        let row = base + local * rowBytes
                        for b in 0..<batch { out[b * n + local] = QuantizedRowDot.q8_0(row, x + b * columns, blocks: blocks) }
                    }
                default:
                    if scratch == nil { scratch = .allocate(capacity: columns) }
                    for local in local0..<(local0 + end - r) {
                        GGMLDequantizer.dequantize(m.type, from: base + local * rowBytes, count: columns, into: scratch!)
                        for b in 0..<batch { out[b * n + local] = QuantizedKernels.dot(scratch!, x + b * columns, columns) }
                    }
                }
                r = end
                i += 1
            }
        }
    }
}
