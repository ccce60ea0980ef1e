import ArgumentParser
import Foundation
import Models
import TensorCore

/// `lorakit merge`: the base model with a PEFT adapter merged into its weights, saved as a Hugging Face directory.
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge a LoRA or AdaLoRA adapter into the base weights and save a Hugging Face model directory.",
        discussion: "Writes config.json, model.safetensors and the tokenizer files (copied from a Hugging Face base, or "
            + "written from a GGUF base's vocabulary); a quantized GGUF base is dequantized to Float32 first. "
            + "`lorakit generate --model OUT` loads the result, and so does transformers.")

    @Option(help: "Base model: a .gguf file or a Hugging Face directory.") var model: String
    @Option(help: "The PEFT adapter directory (adapter_config.json, adapter_model.safetensors).") var adapter: String
    @Option(help: "Output directory (created; must be absent or empty unless --overwrite).") var out: String
    @Option(help: "Weight type in model.safetensors: f32, f16 or bf16.") var dtype: String = "f32"
    @Flag(help: "Replace an existing non-empty output directory.") var overwrite = false

    func validate() throws {
        guard MergedWeightPrecision(rawValue: dtype) != nil else {
            throw ValidationError("--dtype must be one of f32, f16, bf16, got '\(dtype)'")
        }
    }

    func run() throws {
        try BLAS.ensureAvailable()
        let started = Date()
        let summary = try MergedModelWriter.merge(model: URL(fileURLWithPath: model), adapter: URL(fileURLWithPath: adapter),
                                                  to: URL(fileURLWithPath: out), precision: MergedWeightPrecision(rawValue: dtype)!,
                                                  overwrite: overwrite)
        print("Merged \(summary.adapterType ?? "no") adapter into \(summary.mergedModules.count) modules"
              + (summary.mergedModules.first.map { " (\($0), …)" } ?? ""))
        print(String(format: "Wrote %@: %d tensors, %.1f MB of %@ weights, files %@ (%.1f s)", out, summary.tensorCount,
                     Double(summary.weightBytes) / 1e6, dtype, summary.files.joined(separator: ", "), Date().timeIntervalSince(started)))
    }
}
