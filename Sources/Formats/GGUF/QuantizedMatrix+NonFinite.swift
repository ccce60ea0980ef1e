// Finding NaN/Inf in a matrix kept in its ggml blocks. A block's f16 scale that is NaN or Inf (a corrupt or
// hostile file) makes every value of the block non-finite, and so would every product and loss downstream;
// loaders scan here so the error names the tensor and the first bad element instead.
import Foundation
import TensorCore

extension QuantizedMatrix {
    /// nil when every dequantised element is finite; otherwise how many are not and the first one
    /// (flat index row · columns + column). Rows are expanded in parallel chunks through one scratch row each,
    /// so memory stays at a few rows whatever the matrix size.
    public func nonFiniteReport() -> NonFiniteReport? {
        guard rows > 0, columns > 0 else { return nil }
        let (base, rowBytes, columns, type) = (self.base, self.rowBytes, self.columns, self.type)
        let lock = NSLock()
        var count = 0, first = Int.max, firstValue: Float = 0
        Parallel.forRanges(rows, minChunk: max(1, 262_144 / columns)) { chunk in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: columns)
            defer { scratch.deallocate() }
            var localCount = 0, localFirst = Int.max, localValue: Float = 0
            for r in chunk {
                GGMLDequantizer.dequantize(type, from: base + r * rowBytes, count: columns, into: scratch)
                for c in 0..<columns where !scratch[c].isFinite {
                    if localFirst == Int.max { localFirst = r * columns + c; localValue = scratch[c] }
                    localCount += 1
                }
            }
            guard localCount > 0 else { return }
            lock.lock(); defer { lock.unlock() }
            count += localCount
            if localFirst < first { first = localFirst; firstValue = localValue }
        }
        return count == 0 ? nil : NonFiniteReport(count: count, firstIndex: first, firstValue: firstValue)
    }
}
