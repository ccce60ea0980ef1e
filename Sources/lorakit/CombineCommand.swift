import ArgumentParser
import Foundation
import PEFT
import TensorCore

/// `lorakit combine`: PEFT's add_weighted_adapter on adapter files — a new LoRA adapter from weighted sources.
struct Combine: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Combine LoRA adapters into one (PEFT's add_weighted_adapter): cat, linear, svd, ties, magnitude_prune, dare_linear.",
        discussion: """
            Each --adapter is DIR:WEIGHT (weight 1 if omitted); no base model is needed. cat stacks the weighted \
            adapters (rank Σr, the exact weighted sum of their updates); svd truncates that weighted sum of ΔW to \
            --rank and reports the Eckart–Young error per module; linear, ties, magnitude_prune and dare_linear \
            combine the A's and B's separately (equal ranks needed; --density for the last three). The sources must \
            adapt the same modules of the same base; DoRA adapters are refused.
            """)

    @Option(parsing: .singleValue, help: "A source adapter as DIR:WEIGHT (repeat for each source).") var adapter: [String]
    @Option(help: "cat, linear, svd, ties, magnitude_prune or dare_linear (default svd).") var method: String = "svd"
    @Option(help: "svd: rank of the combined adapter (default: the largest source rank).") var rank: Int?
    @Option(help: "ties / magnitude_prune / dare_linear: fraction of values kept, in [0, 1].") var density: Double?
    @Option(help: "dare_linear: seed of the random masks (default 0).") var seed: UInt64 = 0
    @Option(help: "Output directory for the combined adapter.") var out: String
    @Flag(help: "Replace an adapter already in --out.") var overwrite = false
    @Flag(help: "Print the result as JSON.") var json = false

    /// "DIR:0.7" → (DIR, 0.7); a path with no numeric suffix has weight 1.
    static func parseSource(_ text: String) throws -> (path: String, weight: Double) {
        if let colon = text.lastIndex(of: ":"), let weight = Double(text[text.index(after: colon)...]) {
            guard weight.isFinite else { throw ValidationError("--adapter \(text): the weight must be a finite number") }
            return (String(text[..<colon]), weight)
        }
        return (text, 1)
    }

    func run() throws {
        guard let kind = AdapterCombinationMethod(rawValue: method.lowercased()) else {
            throw ValidationError("--method \(method): use one of \(AdapterCombinationMethod.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard !adapter.isEmpty else { throw ValidationError("give at least one --adapter DIR:WEIGHT") }
        let outURL = URL(fileURLWithPath: out)
        let existing = [AdapterFiles.configName, AdapterFiles.weightsName].filter {
            FileManager.default.fileExists(atPath: outURL.appendingPathComponent($0).path)
        }
        if !existing.isEmpty && !overwrite {
            throw ValidationError("\(out) already holds an adapter (\(existing.joined(separator: ", "))); pass --overwrite to replace it")
        }
        try BLAS.ensureAvailable()
        let sources = try adapter.map { text -> CombinationSource in
            let (path, weight) = try Self.parseSource(text)
            return CombinationSource(name: path, weight: weight, adapter: try LoRAAdapterMatrices.load(from: URL(fileURLWithPath: path)))
        }
        let result = try WeightedAdapterCombination.combine(sources, method: kind, rank: rank, density: density, seed: seed)
        try result.adapter.save(to: outURL)  // each file written to a temporary, then renamed
        let errors = result.truncationErrors
        let worst = errors.map { $0.norm > 0 ? $0.frobenius / $0.norm : 0 }.max() ?? 0
        let total = errors.reduce(0) { $0 + Double($1.frobenius) * Double($1.frobenius) }.squareRoot()
        let totalNorm = errors.reduce(0) { $0 + Double($1.norm) * Double($1.norm) }.squareRoot()
        if json {
            let report: [String: Any] = [
                "method": result.method.rawValue, "rank": result.adapter.config.r, "modules": result.adapter.modules.count, "out": out,
                "eckart_young": errors.map { ["module": $0.module, "frobenius_error": Double($0.frobenius), "delta_norm": Double($0.norm)] as [String: Any] },
            ]
            let data = try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("\(result.method.rawValue): \(sources.count) adapters → rank \(result.adapter.config.r) on \(result.adapter.modules.count) modules, written to \(out)")
        if !errors.isEmpty {
            print(String(format: "Eckart–Young truncation error ‖ΣwΔW − rank-%d‖_F: total %.4g (%.2f%% of ‖ΣwΔW‖_F %.4g); worst module %.2f%%",
                         result.adapter.config.r, total, totalNorm > 0 ? 100 * total / totalNorm : 0, totalNorm, 100 * Double(worst)))
            for e in errors.sorted(by: { $0.frobenius / max($0.norm, 1e-30) > $1.frobenius / max($1.norm, 1e-30) }).prefix(5) {
                print(String(format: "  %@: %.4g of %.4g (%.2f%%)", e.module, e.frobenius, e.norm, e.norm > 0 ? 100 * e.frobenius / e.norm : 0))
            }
        }
    }
}
