// Seeded, counter-based randomness: value i of a draw depends only on (seed, position), so results are
// identical across runs, platforms and thread counts, and filling in parallel changes nothing.

public struct RandomGenerator: Sendable {
    public let seed: UInt64
    /// Number of 64-bit values consumed so far; saved in checkpoints to resume a stream exactly.
    public var position: UInt64
    /// Data parallelism: this process holds only some rows of a batch (nil: all of it). See `RowShard`.
    public var rowShard: RowShard?

    public init(seed: UInt64, position: UInt64 = 0) { self.seed = seed; self.position = position; rowShard = nil }

    /// Rows `offset ..< offset + count` of a batch of `total` rows, for a stream shared by data-parallel ranks.
    /// Every shaped draw (`uniform`, `normal`, `bernoulli`) is then read as this shard's part of the batch-wide draw:
    /// a tensor of `count` rows gets the counters rows `offset…` would get in the whole batch's draw (rows are the
    /// leading dimension, so a row's counters are contiguous), and the stream advances past the whole batch-wide
    /// draw. Ranks thus draw exactly the dropout masks one process drawing the whole batch would, and end at the
    /// same position. Single values (`nextUInt64`, `permutation`) are not sharded.
    public struct RowShard: Sendable, Equatable {
        public let offset: Int
        public let count: Int
        public let total: Int

        /// Throws unless 0 < count and offset + count ≤ total.
        public init(offset: Int, count: Int, total: Int) throws {
            guard count > 0, offset >= 0, offset + count <= total else {
                throw TensorError.invalidArgument(operation: "row shard", reason: "rows \(offset)..<\(offset + count) of \(total) are empty or out of range")
            }
            self.offset = offset; self.count = count; self.total = total
        }
    }

    /// The first counter of this process's part of a draw of `count` elements using `perElement` counters each,
    /// advancing `position` past the whole (batch-wide, under a `rowShard`) draw.
    @inline(__always)
    mutating func claim(_ count: Int, perElement: UInt64) -> UInt64 {
        let start = position
        guard let shard = rowShard else { position &+= perElement &* UInt64(count); return start }
        precondition(count % shard.count == 0, "a draw of \(count) values does not split into the shard's \(shard.count) rows")
        let perRow = UInt64(count / shard.count) &* perElement
        position &+= perRow &* UInt64(shard.total)
        return start &+ perRow &* UInt64(shard.offset)
    }

    /// SplitMix64 finaliser over (seed, counter): a strong 64-bit mix, enough for ML initialisation and dropout.
    @inline(__always)
    static func mix(_ seed: UInt64, _ counter: UInt64) -> UInt64 {
        var z = seed &+ (counter &+ 1) &* 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 random bits (every Float32 step in the unit interval).
    @inline(__always)
    static func unit(_ seed: UInt64, _ counter: UInt64) -> Float {
        Float(mix(seed, counter) >> 40) * (1.0 / 16_777_216.0)
    }

    public mutating func nextUInt64() -> UInt64 { defer { position += 1 }; return Self.mix(seed, position) }

    /// Fork an independent stream (e.g. one per layer) without consuming values from this one.
    public func derived(_ salt: UInt64) -> RandomGenerator {
        RandomGenerator(seed: Self.mix(seed ^ 0xD1B5_4A32_D192_ED03, salt))
    }

    public mutating func uniform(_ shape: [Int], low: Float = 0, high: Float = 1) -> Tensor {
        let start = claim(shape.reduce(1, *), perElement: 1), seed = self.seed
        let t = Tensor(shape: shape) { out in
            let scale = high - low
            Parallel.forRanges(out.count, minChunk: 1 << 15) { r in
                for i in r { out[i] = low + scale * Self.unit(seed, start &+ UInt64(i)) }
            }
        }
        return t
    }

    /// Normal(mean, std) by Box–Muller; element i uses counters 2i and 2i+1.
    public mutating func normal(_ shape: [Int], mean: Float = 0, std: Float = 1) -> Tensor {
        let start = claim(shape.reduce(1, *), perElement: 2), seed = self.seed
        let t = Tensor(shape: shape) { out in
            Parallel.forRanges(out.count, minChunk: 1 << 14) { r in
                for i in r {
                    let c = start &+ 2 &* UInt64(i)
                    let u1 = Double(mix64ToUnitOpen(Self.mix(seed, c)))
                    let u2 = Double(Self.mix(seed, c &+ 1) >> 11) * (1.0 / 9_007_199_254_740_992.0)
                    let z = (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
                    out[i] = mean + std * Float(z)
                }
            }
        }
        return t
    }

    /// Dropout-style keep mask: 1 with probability `keep`, else 0.
    public mutating func bernoulli(_ shape: [Int], probability keep: Float) -> Tensor {
        let start = claim(shape.reduce(1, *), perElement: 1), seed = self.seed
        let t = Tensor(shape: shape) { out in
            Parallel.forRanges(out.count, minChunk: 1 << 15) { r in
                for i in r { out[i] = Self.unit(seed, start &+ UInt64(i)) < keep ? 1 : 0 }
            }
        }
        return t
    }

    /// Fisher–Yates shuffle of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n < 2 { return p }
        for i in stride(from: n - 1, to: 0, by: -1) {
            let j = Int(nextUInt64() % UInt64(i + 1))
            p.swapAt(i, j)
        }
        return p
    }
}

/// (0, 1]: never 0, so log is finite.
@inline(__always) private func mix64ToUnitOpen(_ x: UInt64) -> Double {
    (Double(x >> 11) + 1) * (1.0 / 9_007_199_254_740_992.0)
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#else
import Foundation
@inline(__always) private func _log(_ x: Double) -> Double { Foundation.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Foundation.cos(x) }
#endif
