import Analysis
import ArgumentParser
import Foundation
import Models

/// `lorakit analyze …`: the LoRA paper's low-rank experiments on the user's own weights and adapters.
struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Low-rank analysis of weights and adapters: spectra, subspace similarity, amplification.",
        subcommands: [SpectrumCommand.self, SimilarityCommand.self, AmplificationCommand.self])

    /// `lorakit analyze spectrum`: singular values of weights or of every ΔW = s·B·A of an adapter.
    struct SpectrumCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "spectrum",
            abstract: "Singular values, numerical rank, top-k energy and best rank-k error of weights or an adapter's ΔW.",
            discussion: """
                PATH is a .safetensors or .gguf file (or a model directory of safetensors shards) with --tensor NAME \
                (repeatable), or an adapter directory. --adapter DIR analyses ΔW = s·B·A of every adapted module \
                without the base model. GGUF's permuted Q/K rows do not change singular values.
                """)

        @Argument(help: "Weights file, model directory, or adapter directory.") var path: String?
        @Option(name: .customLong("tensor"), help: "A 2-D tensor of PATH to analyse (repeatable).") var tensors: [String] = []
        @Option(help: "Adapter directory (adapter_config.json + adapter_model.safetensors) or a llama.cpp GGUF LoRA file.") var adapter: String?
        @Option(help: "Write a log-scale plot of the singular values to this SVG file.") var svg: String?
        @Flag(help: "Print the per-k table (σ_k, energy, error) for every matrix, not only when there are ≤ 4.")
        var details = false
        @Flag(help: "Print machine-readable JSON.") var json = false

        func validate() throws {
            if adapter != nil && !tensors.isEmpty { throw ValidationError("give either --adapter DIR or PATH --tensor NAME, not both") }
            if adapter != nil && path != nil { throw ValidationError("with --adapter DIR leave out PATH") }
            if adapter == nil && path == nil { throw ValidationError("give PATH (with --tensor NAME) or --adapter DIR") }
        }

        func run() throws {
            let spectra: [Spectrum]
            let source: String
            if let adapterPath = adapter ?? path.flatMap({ isAdapterDirectory($0) && tensors.isEmpty ? $0 : nil }) {
                let weights = try AdapterWeights.load(adapter: URL(fileURLWithPath: adapterPath))
                spectra = try Spectrum.of(adapter: weights)
                source = adapterPath
            } else {
                let path = path!
                let file = try TensorSource(url: URL(fileURLWithPath: path))
                guard !tensors.isEmpty else {
                    let names = file.matrixNames
                    throw AnalysisError.invalidArgument(argument: "--tensor", reason: "\(path): choose matrices with --tensor NAME; "
                        + "it has \(names.count) 2-D tensors, e.g. " + names.prefix(8).joined(separator: ", "))
                }
                spectra = try tensors.map { try Spectrum.of(matrix: file.matrix($0), name: $0) }
                source = path
            }
            if let svg {
                try Spectrum.plot(spectra, title: "Singular values: \(URL(fileURLWithPath: source).lastPathComponent)")
                    .write(to: URL(fileURLWithPath: svg))
            }
            if json {
                struct Output: Encodable { let source: String; let spectra: [Spectrum] }
                try printJSON(Output(source: source, spectra: spectra))
                return
            }
            print("spectrum of \(spectra.count) matri\(spectra.count == 1 ? "x" : "ces") from \(source)")
            print(Spectrum.summaryTable(spectra))
            if details || spectra.count <= 4 {
                for s in spectra { print(s.detailTable()) }
            }
            if let svg { print("plot: \(svg)") }
        }
    }

    /// `lorakit analyze similarity`: φ(i, j) between two adapters, module by module.
    struct SimilarityCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "similarity",
            abstract: "Normalised subspace similarity φ(i, j) between two adapters for every module adapted in both.",
            discussion: """
                φ(i, j) = ‖U₁[:, :i]ᵀ U₂[:, :j]‖²_F / min(i, j) (LoRA paper, eq. 4). --mode a-right compares the right \
                singular vectors of the A matrices (the paper's choice); delta-left the left singular vectors of ΔW. \
                Independent random subspaces give φ(i, j) ≈ max(i, j)/n.
                """)

        @Argument(help: "First adapter: a PEFT directory or a llama.cpp GGUF LoRA file.") var first: String
        @Argument(help: "Second adapter: a PEFT directory or a llama.cpp GGUF LoRA file.") var second: String
        @Option(help: "Which singular vectors to compare: a-right or delta-left.") var mode: SubspaceSource = .aRight
        @Option(help: "Write one φ heatmap per module into this directory.") var svgDir: String?
        @Flag(help: "Print machine-readable JSON (includes the full φ grids).") var json = false

        func run() throws {
            let urls = [URL(fileURLWithPath: first), URL(fileURLWithPath: second)]
            // A GGUF file read without its base keeps llama.cpp's q/k row order: ΔW's left vectors then differ from a
            // PEFT adapter's by a row permutation (A's right vectors do not).
            if mode == .deltaLeft && ModelAdapters.isGGUF(urls[0]) != ModelAdapters.isGGUF(urls[1]) {
                throw ValidationError("--mode delta-left compares ΔW rows; convert the GGUF adapter with `lorakit export --to peft` first, or use a-right")
            }
            let a = try AdapterWeights.load(adapter: urls[0])
            let b = try AdapterWeights.load(adapter: urls[1])
            let result = try AdapterSimilarity.compare(a, b, source: mode)
            var written: [String] = []
            if let svgDir {
                let directory = URL(fileURLWithPath: svgDir)
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
                for module in result.modules {
                    let url = directory.appendingPathComponent("phi-\(fileSafe(module.module)).svg")
                    try module.heatmap(firstLabel: shortName(first), secondLabel: shortName(second)).write(to: url)
                    written.append(url.path)
                }
            }
            if json {
                struct Output: Encodable { let first: String; let second: String; let similarity: AdapterSimilarity }
                try printJSON(Output(first: first, second: second, similarity: result))
                return
            }
            print(result.summaryTable())
            if !written.isEmpty { print("heatmaps: \(written.count) SVG files in \(svgDir!)") }
        }
    }

    /// `lorakit analyze amplification`: the paper's Table 7 for every adapted module.
    struct AmplificationCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "amplification",
            abstract: "How strongly ΔW amplifies directions of W: ‖ΔW‖_F / ‖UᵀWV‖_F per module (LoRA paper, Table 7).")

        @Option(help: "Base model: a .safetensors file, a Hugging Face model directory, or a Llama-family .gguf file (dequantized).") var model: String
        @Option(help: "Adapter directory, or a llama.cpp GGUF LoRA file (with a .gguf or Hugging Face directory --model).") var adapter: String
        @Option(help: "Seed of the random baseline subspaces.") var seed: UInt64 = 0
        @Flag(help: "Print machine-readable JSON.") var json = false

        func run() throws {
            let base = try TensorSource(url: URL(fileURLWithPath: model))
            let weights = try AdapterWeights.load(adapter: URL(fileURLWithPath: adapter)) { try Export.base(URL(fileURLWithPath: model)) }
            let report = try AmplificationReport.measure(adapter: weights, base: base, seed: seed)
            if json {
                struct Output: Encodable { let model: String; let adapter: String; let amplification: AmplificationReport }
                try printJSON(Output(model: model, adapter: adapter, amplification: report))
                return
            }
            print(report.table())
        }
    }
}

extension SubspaceSource: ExpressibleByArgument {}

/// The last two components of a path ("llama_lora/adapter"): enough to tell adapters apart in a chart label.
private func shortName(_ path: String) -> String {
    URL(fileURLWithPath: path).standardizedFileURL.pathComponents.suffix(2).joined(separator: "/")
}

private func isAdapterDirectory(_ path: String) -> Bool {
    FileManager.default.fileExists(atPath: URL(fileURLWithPath: path).appendingPathComponent("adapter_config.json").path)
}

/// A module path as a file name: dots kept, anything outside [A-Za-z0-9._-] replaced by '_'.
private func fileSafe(_ name: String) -> String {
    String(name.unicodeScalars.map { CharacterSet.alphanumerics.contains($0) || "._-".unicodeScalars.contains($0) ? Character($0) : "_" })
}

private func printJSON<T: Encodable>(_ value: T) throws {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    print(String(decoding: try encoder.encode(value), as: UTF8.self))
}
