// Adapters for analysis from llama.cpp GGUF LoRA files as well as PEFT directories.
import Foundation
import Formats
import Models

extension AdapterWeights {
    /// A llama.cpp GGUF LoRA file. With `base`, tensors are checked against it and q/k lora_B rows are put back in
    /// Hugging Face order (needed to compare ΔW with W); without, the file describes itself (spectra and ranks do
    /// not depend on row order).
    public static func load(ggufAdapter url: URL, base: GGUFLoRABase? = nil) throws -> AdapterWeights {
        let described = try base ?? GGUFLoRABase(adapterFile: GGUFFile(url: url))
        let contents = try GGUFLoRAAdapter.read(url, base: described)
        let modules = try contents.pairs.map { p in
            try AdapterModule(path: p.module, a: p.a, b: p.b, scaling: contents.config.resolved(for: p.module).scaling)
        }
        return AdapterWeights(directory: url, config: contents.config, modules: modules)
    }

    /// A PEFT adapter directory or a GGUF LoRA file (`base` is used for GGUF files only).
    public static func load(adapter url: URL, base: () throws -> GGUFLoRABase? = { nil }) throws -> AdapterWeights {
        ModelAdapters.isGGUF(url) ? try load(ggufAdapter: url, base: base()) : try load(from: url)
    }
}
