import ArgumentParser
import Foundation
import Models
import TensorCore
import Formats

/// `lorakit merge`: the base model with a PEFT adapter merged into its weights, saved as a Hugging Face directory.
struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge a LoRA or AdaLoRA adapter into the base weights and save a Hugging Face model directory or a GGUF file.",
        discussion: "Writes config.json, model.safetensors and the tokenizer files (copied from a Hugging Face base, or "
            + "written from a GGUF base's vocabulary); a quantized GGUF base is dequantized to Float32 first. "
            + "`lorakit generate --model OUT` loads the result, and so does transformers. With --to gguf: one GGUF file that "
            + "llama.cpp loads (tokenizer and chat template included; --type f32, f16, bf16, q8_0, q4_1 or q4_0).")

    @Option(help: "Base model: a .gguf file or a Hugging Face directory.") var model: String
    @Option(help: "The PEFT adapter directory (adapter_config.json, adapter_model.safetensors) or a GGUF LoRA file; with --to gguf it may be left out to convert the base alone (e.g. to F32).") var adapter: String?
    @Option(help: "Output directory (hf) or file (gguf); must be absent (or an empty directory) unless --overwrite.") var out: String
    @Option(help: "Weight type in model.safetensors: f32, f16 or bf16.") var dtype: String = "f32"
    @Option(help: "Output format: hf (Hugging Face directory) or gguf (one llama.cpp file).") var to: String = "hf"
    @Option(help: "GGUF matrix type with --to gguf: f32, f16, bf16, q8_0, q4_1 or q4_0 (norms and biases stay F32).") var type: String = "f16"
    @Flag(help: "Replace an existing non-empty output directory.") var overwrite = false

    var ggufType: GGMLType? { MergedGGUFWriter.types.first { $0.name.lowercased() == type.lowercased() } }

    func validate() throws {
        if adapter == nil && to != "gguf" { throw ValidationError("--adapter is required (it may be left out only with --to gguf)") }
        guard ["hf", "gguf"].contains(to) else { throw ValidationError("--to must be hf or gguf, got '\(to)'") }
        guard ggufType != nil else { throw ValidationError("--type must be one of f32, f16, bf16, q8_0, q4_1, q4_0, got '\(type)'") }
        guard MergedWeightPrecision(rawValue: dtype) != nil else {
            throw ValidationError("--dtype must be one of f32, f16, bf16, got '\(dtype)'")
        }
    }

    func run() throws {
        try BLAS.ensureAvailable()
        let started = Date()
        if to == "gguf" {
            let s = try MergedGGUFWriter.merge(model: URL(fileURLWithPath: model), adapter: adapter.map { URL(fileURLWithPath: $0) },
                                               to: URL(fileURLWithPath: out), type: ggufType!, overwrite: overwrite)
            if adapter == nil { print("No adapter: converting the base") }
            else { print("Merged adapter into \(s.mergedModules.count) modules" + (s.mergedModules.first.map { " (\($0), …)" } ?? "")) }
            print(String(format: "Wrote %@: %d tensors, %.1f MB, matrices %@%@ (%.1f s)", out, s.tensorCount, Double(s.bytes) / 1e6, s.type.name,
                         s.f16Fallbacks.isEmpty ? "" : " (\(s.f16Fallbacks.count) as F16: rows not whole blocks)", Date().timeIntervalSince(started)))
            if !s.hasTokenizer {
                FileHandle.standardError.write(Data(("warning: \(out) has no tokenizer: \(model) carries none (no tokenizer.json or "
                    + "tokenizer.ggml.*), and llama.cpp does not load a model without one; merge from a base that has one\n").utf8))
            }
            return
        }
        let summary = try MergedModelWriter.merge(model: URL(fileURLWithPath: model), adapter: URL(fileURLWithPath: adapter!),
                                                  to: URL(fileURLWithPath: out), precision: MergedWeightPrecision(rawValue: dtype)!,
                                                  overwrite: overwrite)
        print("Merged \(summary.adapterType ?? "no") adapter into \(summary.mergedModules.count) modules"
              + (summary.mergedModules.first.map { " (\($0), …)" } ?? ""))
        print(String(format: "Wrote %@: %d tensors, %.1f MB of %@ weights, files %@ (%.1f s)", out, summary.tensorCount,
                     Double(summary.weightBytes) / 1e6, dtype, summary.files.joined(separator: ", "), Date().timeIntervalSince(started)))
    }
}
