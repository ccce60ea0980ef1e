import ArgumentParser
import Foundation
import Formats
import Models
import TensorCore

/// `lorakit export`: adapters between PEFT's format and llama.cpp's GGUF LoRA format.
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a LoRA adapter between PEFT's format and llama.cpp's GGUF LoRA format.",
        discussion: """
            --to gguf: a PEFT LoRA directory → a GGUF adapter that llama.cpp applies with --lora / --lora-scaled \
            (q/k lora_B rows permuted for architecture llama; rsLoRA and alpha patterns folded into the tensors). \
            --to peft: a GGUF adapter → a PEFT directory (the original config when LoRAKit wrote the file). \
            --model is the base the adapter belongs to (a .gguf file or a Hugging Face directory); every tensor \
            is checked against it.
            """)

    @Option(help: "The adapter: a PEFT directory (--to gguf) or a GGUF LoRA file (--to peft).") var adapter: String
    @Option(help: "Target format: gguf or peft.") var to: String
    @Option(help: "The base model: a .gguf file or a Hugging Face model directory.") var model: String
    @Option(help: "Output file (gguf) or directory (peft).") var out: String
    @Option(help: "GGUF tensor type: f32, f16, bf16 or q8_0 (lora_b falls back to f16 when r is not a multiple of 32).")
    var type: String = "f32"
    @Flag(help: "Replace an existing output.") var overwrite = false

    func validate() throws {
        guard ["gguf", "peft"].contains(to) else { throw ValidationError("--to must be gguf or peft, got '\(to)'") }
        guard let t = GGMLType.allCases.first(where: { $0.name.lowercased() == type.lowercased() }),
              GGUFLoRAAdapter.writableTypes.contains(t) else {
            throw ValidationError("--type must be one of f32, f16, bf16, q8_0, got '\(type)'")
        }
    }

    func run() throws {
        try BLAS.ensureAvailable()
        let modelURL = URL(fileURLWithPath: model), adapterURL = URL(fileURLWithPath: adapter), outURL = URL(fileURLWithPath: out)
        let base = try Self.base(modelURL)
        if to == "gguf" {
            let ggmlType = GGMLType.allCases.first { $0.name.lowercased() == type.lowercased() }!
            let s = try GGUFLoRAAdapter.export(peftAdapter: adapterURL, base: base, to: outURL, type: ggmlType, overwrite: overwrite)
            print("Wrote \(out): \(s.modules.count) modules × (lora_a, lora_b) as \(ggmlType.name), architecture \(s.architecture), "
                  + "adapter.lora.alpha = \(s.alpha)" + (s.scaleInB ? " (per-module PEFT scales folded into lora_b)" : ""))
            if !s.f16Fallbacks.isEmpty { print("  \(s.f16Fallbacks.count) lora_b tensors as F16 (Q8_0 needs r to be a multiple of 32)") }
        } else {
            let c = try GGUFLoRAAdapter.convertToPEFT(adapterURL, base: base, to: outURL, overwrite: overwrite)
            print("Wrote \(out): \(c.pairs.count) modules, r = \(c.config.r), lora_alpha = \(c.config.loraAlpha)"
                  + (c.storedConfigJSON == nil ? " (config inferred from the tensors)" : " (original adapter_config.json)"))
        }
    }

    /// The base as the adapter format sees it: from the GGUF tensor table, or from a loaded Hugging Face model.
    static func base(_ url: URL) throws -> GGUFLoRABase {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
            return try GGUFLoRABase(model: ModelLoader.loadHuggingFace(directory: url).model, source: url.path)
        }
        return try GGUFLoRABase(gguf: GGUFFile(url: url))
    }
}
