import Foundation

// Dense, contiguous, row-major Float32 tensors with copy-on-write storage.
// Everything numeric in LoRAKit flows through this type; kernels take raw buffers from it.

/// Owns one aligned Float32 buffer. Reference type so `Tensor` copies are cheap until written.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    public init(count: Int) {
        self.count = count
        // Large buffers are recycled through `BufferPool` (64-byte aligned either way).
        pointer = BufferPool.allocateScratch(count: count)
    }

    deinit { BufferPool.releaseScratch(pointer, count: count) }
}

public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Uninitialised memory is never exposed: every initialiser writes all elements.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
        storage.pointer.initialize(repeating: 0, count: storage.count)
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(zeros: shape)
        storage.pointer.update(repeating: value, count: storage.count)
    }

    /// Creates a tensor from row-major values; `values.count` must equal the product of `shape`.
    public init(_ values: [Float], shape: [Int]) {
        precondition(values.count == shape.reduce(1, *), "\(values.count) values do not fill shape \(shape)")
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { storage.pointer.update(from: base, count: values.count) }
        }
    }

    /// Validating form of `init(_:shape:)` for data that comes from users or files.
    public init(validating values: [Float], shape: [Int]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else { throw TensorError.invalidShape(shape, reason: "negative dimension") }
        guard values.count == shape.reduce(1, *) else {
            throw TensorError.shapeMismatch(operation: "Tensor(values:shape:)", expected: [values.count], got: shape)
        }
        self.init(values, shape: shape)
    }

    /// Wraps a fill closure over the raw buffer, for kernels that produce a fresh tensor.
    public init(shape: [Int], fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        self.init(zeros: shape)
        fill(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    public static func scalar(_ value: Float) -> Tensor { Tensor([value], shape: []) }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var scalarValue: Float { precondition(count == 1); return storage.pointer[0] }
    public var array: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// Size of dimension `d`; negative `d` counts from the end like PyTorch.
    public func dim(_ d: Int) -> Int { shape[d < 0 ? shape.count + d : d] }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: storage.count)
            copy.pointer.initialize(from: storage.pointer, count: storage.count)
            storage = copy
        }
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    public subscript(flat i: Int) -> Float {
        get { precondition(i >= 0 && i < count, "index \(i) out of range 0..<\(count)"); return storage.pointer[i] }
        set { precondition(i >= 0 && i < count); withUnsafeMutableBufferPointer { $0[i] = newValue } }
    }

    /// Multi-index access, e.g. `t[i, j]` (bounds-checked; for tests and small code, not hot loops).
    public subscript(_ index: Int...) -> Float {
        get { storage.pointer[flatIndex(index)] }
        set { let f = flatIndex(index); withUnsafeMutableBufferPointer { $0[f] = newValue } }
    }

    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) does not match shape \(shape)")
        var f = 0
        for (i, n) in zip(index, shape) { precondition(i >= 0 && i < n, "index \(index) out of bounds for \(shape)"); f = f * n + i }
        return f
    }

    /// Same data, new shape (one dimension may be -1). Shares storage until written.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var dims = newShape
        if let inferred = dims.firstIndex(of: -1) {
            let known = dims.enumerated().filter { $0.offset != inferred }.reduce(1) { $0 * $1.element }
            precondition(known > 0 && count % known == 0, "cannot reshape \(shape) to \(newShape)")
            dims[inferred] = count / known
        }
        precondition(dims.reduce(1, *) == count, "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        var t = self
        t.shape = dims
        return t
    }

    /// Throwing reshape for user-facing paths.
    public func reshaped(checking newShape: [Int]) throws -> Tensor {
        guard newShape.filter({ $0 == -1 }).count <= 1, newShape.allSatisfy({ $0 >= -1 }) else {
            throw TensorError.invalidShape(newShape, reason: "at most one -1 and no other negative dimension")
        }
        let known = newShape.filter { $0 != -1 }.reduce(1, *)
        let ok = newShape.contains(-1) ? (known > 0 && count % known == 0) : known == count
        guard ok else { throw TensorError.shapeMismatch(operation: "reshape", expected: shape, got: newShape) }
        return reshaped(newShape)
    }
}

extension Tensor: Equatable {
    /// Exact equality of shape and every element (NaN ≠ NaN, as IEEE says).
    public static func == (a: Tensor, b: Tensor) -> Bool {
        guard a.shape == b.shape else { return false }
        return a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in
            for i in 0..<pa.count where pa[i] != pb[i] { return false }
            return true
        } }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = array.prefix(8).map { String(format: "%.5g", Double($0)) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
