// Finding NaN/Inf in a tensor, for loaders and writers that must name a broken tensor instead of passing it on
// (a NaN in one adapter weight makes every later loss NaN, far from its cause).

/// The first non-finite element of a tensor and how many there are.
public struct NonFiniteReport: Equatable, Sendable, CustomStringConvertible {
    public let count: Int
    public let firstIndex: Int
    public let firstValue: Float
    public init(count: Int, firstIndex: Int, firstValue: Float) {
        self.count = count; self.firstIndex = firstIndex; self.firstValue = firstValue
    }
    public var description: String { "\(count) non-finite value\(count == 1 ? "" : "s") (first: \(firstValue) at flat index \(firstIndex))" }
}

extension Tensor {
    /// nil when every element is finite; otherwise where the NaN/Inf values are.
    public func nonFiniteReport() -> NonFiniteReport? {
        withUnsafeBufferPointer { values in
            var count = 0, first = -1
            for i in values.indices where !values[i].isFinite {
                if first < 0 { first = i }
                count += 1
            }
            return first < 0 ? nil : NonFiniteReport(count: count, firstIndex: first, firstValue: values[first])
        }
    }
}
