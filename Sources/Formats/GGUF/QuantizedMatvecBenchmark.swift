// Micro-benchmark of quantized matrix-vector products on synthetic blocks (used by `lorakit bench`).
import Dispatch
import TensorCore

/// Times `QuantizedMatrix.matvec` on random, well-formed blocks.
public enum QuantizedMatvecBenchmark {
    /// Throughput of one configuration.
    public struct Result: Sendable {
        public let type: GGMLType
        public let rows: Int
        public let columns: Int
        public let iterations: Int
        public let seconds: Double
        /// 2·rows·columns floating-point operations per matvec.
        public var gflops: Double { 2 * Double(rows) * Double(columns) * Double(iterations) / seconds / 1e9 }
        /// Quantized weight bytes read per second.
        public var gigabytesPerSecond: Double {
            Double(type.byteCount(elements: rows * columns) ?? 0) * Double(iterations) / seconds / 1e9
        }
    }

    /// The shapes inference runs most: a Q4_1 MLP projection [1536, 576] and the Q8_0 output head
    /// (token_embd, [49152, 576]) of SmolLM2-135M.
    public static let standardCases: [(type: GGMLType, rows: Int, columns: Int)] = [
        (.q4_1, 1536, 576), (.q4_1, 576, 1536), (.q8_0, 49152, 576),
    ]

    /// Runs each standard case for about `seconds`.
    public static func runStandard(seconds: Double = 0.5) throws -> [Result] {
        try standardCases.map { try run(type: $0.type, rows: $0.rows, columns: $0.columns, seconds: seconds) }
    }

    /// Times matvec of a random [rows, columns] matrix of `type` for about `seconds` (at least 3 runs).
    public static func run(type: GGMLType, rows: Int, columns: Int, seconds: Double = 0.5, seed: UInt64 = 0) throws -> Result {
        let matrix = try QuantizedMatrix(name: "bench.\(type.name)", type: type, rows: rows, columns: columns,
                                         bytes: randomBlocks(type, elements: rows * columns, seed: seed))
        var rng = RandomGenerator(seed: seed &+ 1)
        let x = rng.uniform([columns], low: -1, high: 1)
        var out = [Float](repeating: 0, count: rows)
        return x.withUnsafeBufferPointer { xs in
            out.withUnsafeMutableBufferPointer { os in
                guard let xp = xs.baseAddress, let op = os.baseAddress else {
                    return Result(type: type, rows: rows, columns: columns, iterations: 0, seconds: 1)
                }
                matrix.matvec(x: xp, out: op)   // warm-up: page in the weights
                var iterations = 0
                let start = DispatchTime.now().uptimeNanoseconds
                var elapsed = 0.0
                while elapsed < seconds || iterations < 3 {
                    matrix.matvec(x: xp, out: op)
                    iterations += 1
                    elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
                }
                return Result(type: type, rows: rows, columns: columns, iterations: iterations, seconds: elapsed)
            }
        }
    }

    /// Random quants with finite, moderate f16 scales (random scale bits could be NaN or subnormal,
    /// which would time something other than the real workload).
    static func randomBlocks(_ type: GGMLType, elements: Int, seed: UInt64) throws -> [UInt8] {
        guard let count = type.byteCount(elements: elements) else {
            throw GGUFError.invalidQuantizedData(tensor: "bench.\(type.name)", reason: "\(elements) elements is not whole \(type.name) blocks")
        }
        var rng = RandomGenerator(seed: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        for i in 0..<count { bytes[i] = UInt8(truncatingIfNeeded: rng.nextUInt64()) }
        let halfOne: UInt16 = 0x2C00   // 1/16
        let scaleOffsets: [Int]
        switch type {
        case .q4_0, .q5_0, .q8_0: scaleOffsets = [0]
        case .q4_1, .q5_1, .q4_K, .q5_K: scaleOffsets = [0, 2]
        case .q6_K: scaleOffsets = [208]
        case .f16, .bf16:
            let bits: UInt16 = type == .f16 ? 0x3800 : 0x3F00   // 0.5 in each format, low bits random
            for i in stride(from: 0, to: count, by: 2) { bytes[i + 1] = UInt8(bits >> 8) | (bytes[i + 1] & 0x80) }
            return bytes
        case .f32:
            for i in stride(from: 0, to: count, by: 4) { bytes[i + 3] = 0x3F | (bytes[i + 3] & 0x80) }
            return bytes
        default: scaleOffsets = []
        }
        for block in stride(from: 0, to: count, by: type.blockBytes) {
            for o in scaleOffsets {
                bytes[block + o] = UInt8(halfOne & 0xFF) | (bytes[block + o] & 0x3F)
                bytes[block + o + 1] = UInt8(halfOne >> 8)
            }
        }
        return bytes
    }
}
