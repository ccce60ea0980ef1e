// A weight matrix kept in its ggml block format (never expanded as a whole): W is [rows = out
// features, columns = in features], each row a run of blocks. Products read the blocks directly;
// `dequantizeRows` expands a slice on the fly (QLoRA-style training over a frozen quantized base).
import TensorCore

/// Heap bytes for matrices built from bytes in memory rather than from a mapped file.
final class GGMLOwnedBytes: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ bytes: [UInt8]) {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
        bytes.withUnsafeBytes { src in if let s = src.baseAddress { pointer.copyMemory(from: s, byteCount: bytes.count) } }
    }
    deinit { pointer.deallocate() }
    /// Stand-in base address for zero-byte matrices.
    static let empty = GGMLOwnedBytes([])
}

/// A quantized weight matrix y = W·x with W: [rows, columns] stored as ggml blocks.
public struct QuantizedMatrix: @unchecked Sendable {
    /// Name used in errors (the GGUF tensor name when loaded from a file).
    public let name: String
    public let type: GGMLType
    /// Output features (ggml ne1).
    public let rows: Int
    /// Input features (ggml ne0), a multiple of `type.blockSize`.
    public let columns: Int
    /// Bytes per row.
    public let rowBytes: Int
    let base: UnsafeRawPointer
    let owner: AnyObject

    init(name: String, type: GGMLType, rows: Int, columns: Int, mappedBytes: UnsafeRawBufferPointer, owner: AnyObject) throws {
        let rowBytes = try QuantizedMatrix.validate(name: name, type: type, rows: rows, columns: columns, byteCount: mappedBytes.count)
        self.name = name
        self.type = type
        self.rows = rows
        self.columns = columns
        self.rowBytes = rowBytes
        self.owner = owner
        base = mappedBytes.baseAddress ?? UnsafeRawPointer(GGMLOwnedBytes.empty.pointer)
    }

    /// A matrix over a copy of `bytes` (rows × columns/blockSize blocks, row-major).
    public init(name: String = "<bytes>", type: GGMLType, rows: Int, columns: Int, bytes: [UInt8]) throws {
        let storage = GGMLOwnedBytes(bytes)
        try self.init(name: name, type: type, rows: rows, columns: columns,
                      mappedBytes: UnsafeRawBufferPointer(start: storage.pointer, count: bytes.count), owner: storage)
    }

    private static func validate(name: String, type: GGMLType, rows: Int, columns: Int, byteCount: Int) throws -> Int {
        guard type.isDequantizable else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "type \(type.name) has no kernels")
        }
        guard rows >= 0, columns >= 0 else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "negative shape [\(rows), \(columns)]")
        }
        // Zero columns hold no bytes, so nothing in the file bounds the rows: a 352-byte GGUF claiming [805 M, 0]
        // made every product allocate and loop over 805 M outputs (found by fuzzing).
        guard columns > 0 || rows == 0 else {
            throw GGUFError.invalidQuantizedData(tensor: name, reason: "shape [\(rows), 0]: a matrix with rows needs at least one column")
        }
        guard let rowBytes = type.byteCount(elements: columns) else {
            throw GGUFError.invalidQuantizedData(tensor: name,
                reason: "\(columns) columns is not a multiple of the \(type.name) block size \(type.blockSize)")
        }
        let (total, overflow) = rowBytes.multipliedReportingOverflow(by: rows)
        guard !overflow, total == byteCount else {
            throw GGUFError.invalidQuantizedData(tensor: name,
                reason: "[\(rows), \(columns)] \(type.name) needs \(overflow ? "too many" : "\(total)") bytes, got \(byteCount)")
        }
        return rowBytes
    }

    /// PyTorch-order shape [rows, columns].
    public var shape: [Int] { [rows, columns] }

    /// Bytes of quantized data.
    public var byteCount: Int { rows * rowBytes }

    /// Rows per parallel chunk so that a chunk is ≳ 40 K multiply-adds (≳ 20 µs).
    private var minRowsPerChunk: Int { max(1, 40_000 / max(columns, 1)) }

    /// Writes rows `range` as Float32 into `out` ([range.count, columns], row-major).
    public func dequantizeRows(_ range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) out of 0..<\(rows) in '\(name)'")
        let (base, rowBytes, columns, type) = (self.base, self.rowBytes, self.columns, self.type)
        Parallel.forRanges(range.count, minChunk: max(1, 65_536 / max(columns, 1))) { chunk in
            for i in chunk {
                GGMLDequantizer.dequantize(type, from: base + (range.lowerBound + i) * rowBytes, count: columns,
                                           into: out + i * columns)
            }
        }
    }

    /// Rows `range` as a Float32 tensor [range.count, columns].
    public func dequantizeRows(_ range: Range<Int>) throws -> Tensor {
        guard range.lowerBound >= 0, range.upperBound <= rows else {
            throw GGUFError.shapeMismatch(tensor: name, operation: "dequantizeRows(\(range))", expected: [rows, columns], got: [range.upperBound, columns])
        }
        return Tensor(shape: [range.count, columns]) { dst in
            if let p = dst.baseAddress { dequantizeRows(range, into: p) }
        }
    }

    /// The whole matrix as Float32 [rows, columns].
    public func dequantized() -> Tensor {
        Tensor(shape: [rows, columns]) { dst in if let p = dst.baseAddress { dequantizeRows(0..<rows, into: p) } }
    }

    /// out = W·x. x: [columns], out: [rows]. Q4_0/Q4_1/Q8_0 use fused block kernels; other types
    /// dequantise one row at a time into a scratch row.
    public func matvec(x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) {
        let (base, rowBytes, columns, type) = (self.base, self.rowBytes, self.columns, self.type)
        let blocks = columns / 32
        let xsum = UnsafeMutablePointer<Float>.allocate(capacity: max(blocks, 1))
        defer { xsum.deallocate() }
        if type == .q4_0 || type == .q4_1 { QuantizedKernels.blockSums(x, blocks: blocks, into: xsum) }
        Parallel.forRanges(rows, minChunk: minRowsPerChunk) { chunk in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(columns, 1))
            defer { scratch.deallocate() }
            for r in chunk {
                let row = base + r * rowBytes
                switch type {
                case .q4_1: out[r] = QuantizedKernels.q4_1Row(row, x, xsum, blocks: blocks, scratch: scratch)
                case .q4_0: out[r] = QuantizedKernels.q4_0Row(row, x, xsum, blocks: blocks, scratch: scratch)
                case .q8_0: out[r] = QuantizedKernels.q8_0Row(row, x, blocks: blocks, scratch: scratch)
                default:
                    GGMLDequantizer.dequantize(type, from: row, count: columns, into: scratch)
                    out[r] = QuantizedKernels.dot(scratch, x, columns)
                }
            }
        }
    }

    /// out = x·Wᵀ for a small batch. x: [batch, columns], out: [batch, rows]. Each row of W is
    /// dequantised once into a scratch row and dotted with every x row; for large batches prefer
    /// `matmul(_:)` on a tensor, which switches to tiles + BLAS.
    public func matmul(x: UnsafePointer<Float>, batch: Int, out: UnsafeMutablePointer<Float>) {
        if batch == 1 { matvec(x: x, out: out); return }
        guard batch > 0 else { return }
        let (base, rowBytes, columns, type, rows) = (self.base, self.rowBytes, self.columns, self.type, self.rows)
        Parallel.forRanges(rows, minChunk: max(1, minRowsPerChunk / batch)) { chunk in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: max(columns, 1))
            defer { scratch.deallocate() }
            for r in chunk {
                GGMLDequantizer.dequantize(type, from: base + r * rowBytes, count: columns, into: scratch)
                for b in 0..<batch { out[b * rows + r] = QuantizedKernels.dot(scratch, x + b * columns, columns) }
            }
        }
    }

    /// Batches at or above this size use dequantised row tiles and BLAS gemm in `matmul(_:)`.
    public static let gemmBatchThreshold = 16

    /// y = x·Wᵀ. x: [..., columns] → y: [..., rows]. Small batches read the blocks directly; larger ones
    /// dequantise 256-row tiles and call BLAS (the whole matrix is never expanded at once).
    public func matmul(_ x: Tensor) throws -> Tensor {
        guard x.rank >= 1, x.dim(-1) == columns else {
            throw GGUFError.shapeMismatch(tensor: name, operation: "matmul", expected: [-1, columns], got: x.shape)
        }
        let batch = x.count / max(columns, 1)
        let outShape = Array(x.shape.dropLast()) + [rows]
        if batch < QuantizedMatrix.gemmBatchThreshold || columns == 0 {
            return x.withUnsafeBufferPointer { xs in
                Tensor(shape: outShape) { dst in
                    if let xp = xs.baseAddress, let op = dst.baseAddress, columns > 0 { matmul(x: xp, batch: batch, out: op) }
                }
            }
        }
        try BLAS.ensureAvailable()
        let tileRows = 256
        let tile = BufferPool.allocateScratch(count: tileRows * columns)
        defer { BufferPool.releaseScratch(tile, count: tileRows * columns) }
        return x.withUnsafeBufferPointer { xs in
            Tensor(shape: outShape) { dst in
                guard let xp = xs.baseAddress, let op = dst.baseAddress else { return }
                var r0 = 0
                while r0 < rows {
                    let n = min(tileRows, rows - r0)
                    dequantizeRows(r0..<(r0 + n), into: tile)
                    // out[:, r0..<r0+n] = x [batch, columns] · tileᵀ [columns, n], onto the tensor's zeros
                    BLAS.gemm(.none, .transposed, m: batch, n: n, k: columns, a: xp, lda: columns,
                              b: tile, ldb: columns, beta: 1, c: op + r0, ldc: rows)
                    r0 += n
                }
            }
        }
    }

    /// y = W·x for a vector x: [columns] → [rows].
    public func matvec(_ x: Tensor) throws -> Tensor {
        guard x.rank == 1, x.count == columns else {
            throw GGUFError.shapeMismatch(tensor: name, operation: "matvec", expected: [columns], got: x.shape)
        }
        return x.withUnsafeBufferPointer { xs in
            Tensor(shape: [rows]) { dst in
                if let xp = xs.baseAddress, let op = dst.baseAddress { matvec(x: xp, out: op) }
            }
        }
    }
}
