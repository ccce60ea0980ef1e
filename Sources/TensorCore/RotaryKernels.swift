// Rotary position embeddings (RoPE): rotate each pair of a head vector by position · inv_freq[i].
//
// Two pair layouts exist for the same rotation:
//   halfSplit   — pairs (i, i + d/2): Hugging Face `rotate_half`, safetensors checkpoints.
//   interleaved — pairs (2i, 2i + 1): llama.cpp; GGUF stores q/k weight rows permuted for this layout.
// Both use pair i ↔ inv_freq[i] = theta^(−2i/d). Backward is the rotation by −angle.
import Foundation

/// Which elements of a head vector form a rotated pair.
public enum RotaryLayout: String, Sendable {
    /// Pairs (i, i + dim/2), as Hugging Face `rotate_half`.
    case halfSplit
    /// Pairs (2i, 2i + 1), as llama.cpp on GGUF's permuted q/k rows.
    case interleaved
}

/// Precomputed cos/sin of position · inv_freq for a list of token positions; build once per step and share
/// across layers (and between q and k).
public struct RotaryTable: Sendable {
    /// Absolute token positions, one per table row.
    public let positions: [Int]
    /// Head dimension (even); the table holds dim/2 frequencies per position.
    public let dim: Int
    /// RoPE base (10 000 in Llama 2, 100 000 in SmolLM2).
    public let theta: Float
    /// cos and sin, [positions.count, dim / 2].
    public let cos: [Float]
    public let sin: [Float]

    /// Computes angles as Hugging Face does in Float32 (inv_freq = 1 / theta^(2i/dim), angle = position ·
    /// inv_freq rounded to Float32), then cos/sin correctly rounded from that angle.
    public init(positions: [Int], dim: Int, theta: Float) throws {
        guard dim > 0, dim % 2 == 0 else {
            throw TensorError.invalidArgument(operation: "RotaryTable", reason: "head dim must be positive and even, got \(dim)")
        }
        guard theta > 0, theta.isFinite else {
            throw TensorError.invalidArgument(operation: "RotaryTable", reason: "theta must be positive and finite, got \(theta)")
        }
        // Float32 angles lose all precision long before this; larger positions are certainly corrupt input.
        if let bad = positions.first(where: { $0 < 0 || $0 > 1 << 24 }) {
            throw TensorError.invalidArgument(operation: "RotaryTable", reason: "position \(bad) outside 0...\(1 << 24)")
        }
        self.positions = positions; self.dim = dim; self.theta = theta
        let half = dim / 2
        let invFreq: [Float] = (0..<half).map { i in
            1 / Float(Foundation.pow(Double(theta), Double(Float(2 * i) / Float(dim))))
        }
        var c = [Float](repeating: 0, count: positions.count * half), s = c
        for (row, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(Float(p) * invFreq[i])
                c[row * half + i] = Float(Foundation.cos(angle))
                s[row * half + i] = Float(Foundation.sin(angle))
            }
        }
        cos = c; sin = s
    }

    /// Positions start, start + 1, …, start + count − 1 (a prompt, or one decode step at `start`).
    public init(start: Int = 0, count: Int, dim: Int, theta: Float) throws {
        guard count >= 0 else {
            throw TensorError.invalidArgument(operation: "RotaryTable", reason: "negative position count \(count)")
        }
        try self.init(positions: Array(start..<(start + count)), dim: dim, theta: theta)
    }
}

/// Rotates head vectors. x, out: [batch, heads, length, dim] (out may equal x). cos, sin: [length, dim/2] when
/// every batch item shares the positions, or [batch, length, dim/2] with `perBatchPositions` (left-padded
/// batches). `inverse` rotates by −angle: the backward pass, since a rotation's transpose is its inverse.
public func rotaryApply(out: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, cos: UnsafePointer<Float>,
                        sin: UnsafePointer<Float>, batch: Int, heads: Int, length: Int, dim: Int,
                        perBatchPositions: Bool, layout: RotaryLayout, inverse: Bool) {
    let half = dim / 2, rows = batch * heads * length
    let sign: Float = inverse ? -1 : 1
    Parallel.forRanges(rows, minChunk: max(1, (1 << 14) / max(dim, 1))) { range in
        for r in range {
            let t = r % length
            let tableRow = perBatchPositions ? (r / (heads * length)) * length + t : t
            let c = cos + tableRow * half, s = sin + tableRow * half
            let xr = x + r * dim, yr = out + r * dim
            switch layout {
            case .halfSplit:
                for i in 0..<half {
                    let a = xr[i], b = xr[i + half], si = sign * s[i]
                    yr[i] = a * c[i] - b * si
                    yr[i + half] = b * c[i] + a * si
                }
            case .interleaved:
                for i in 0..<half {
                    let a = xr[2 * i], b = xr[2 * i + 1], si = sign * s[i]
                    yr[2 * i] = a * c[i] - b * si
                    yr[2 * i + 1] = b * c[i] + a * si
                }
            }
        }
    }
}
