import ArgumentParser
import Foundation
import TensorCore

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks that print machine-readable JSON.", subcommands: [Gemm.self, BenchGenerate.self, BenchTrain.self, BenchDataParallel.self])

    /// sgemm GFLOP/s of [m, k]·[k, n] after one warm-up product, timed for at least `seconds` and 3 products.
    static func sgemmRate(m: Int, n: Int, k: Int, seconds: Double) -> (gflops: Double, iterations: Int) {
        var rng = RandomGenerator(seed: 0)
        let a = rng.normal([m, k]), b = rng.normal([k, n])
        _ = Tensor.matmul(a, b)
        var iterations = 0
        let start = Date()
        while Date().timeIntervalSince(start) < seconds || iterations < 3 {
            _ = Tensor.matmul(a, b); iterations += 1
        }
        return (2 * Double(m) * Double(n) * Double(k) * Double(iterations) / Date().timeIntervalSince(start) / 1e9, iterations)
    }

    struct Gemm: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "sgemm GFLOP/s for the shapes LoRA training uses.")
        @Option(help: "Seconds to spend per shape.") var seconds: Double = 1.0

        func run() throws {
            try BLAS.ensureAvailable()
            let info = BLAS.describe()
            var rows: [[String: Any]] = []
            for (m, n, k) in [(1024, 576, 576), (1024, 1536, 576), (2048, 2048, 2048)] {
                let rate = Bench.sgemmRate(m: m, n: n, k: k, seconds: seconds)
                rows.append(["m": m, "n": n, "k": k, "iterations": rate.iterations, "gflops": (rate.gflops * 10).rounded() / 10])
            }
            let json: [String: Any] = ["benchmark": "gemm", "library": info.library, "kernel": info.kernel,
                                       "threads": info.threads, "results": rows]
            let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        }
    }
}
