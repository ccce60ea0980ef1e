// Fuzz targets: one entry per parser that reads files from strangers. Each takes the raw bytes of one input,
// feeds them through the same public entry point a user's file goes through (files are written to a scratch
// directory when the loader takes a path), and either returns (the input was accepted and passed the
// target's consistency checks) or throws the loader's typed error. A crash, a hang, an ASan report or a
// `FuzzInvariantViolation` is a finding. Used by `lorakit-fuzz` (libFuzzer driver, scripts/fuzz.sh) and by
// `ReliabilityTests`, which replays the committed corpora and crash reproducers in the fast suite.
import Foundation

/// A parser under fuzz.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// GGUF header + tensor table, every tensor dequantised, quantized matrices, Llama metadata.
    case gguf
    /// Raw block bytes of every dequantizable ggml type (first byte picks the type).
    case dequantize
    /// safetensors header + data, every tensor converted to Float32.
    case safetensors
    /// adapter_config.json as a LoRA and as an AdaLoRA config.
    case adapterConfig = "adapter-config"
    /// An adapter directory (config + weights) loaded into a small base with known shapes.
    case adapterDirectory = "adapter-directory"
    /// tokenizer.json (+ round trip of a fixed text).
    case tokenizer
    /// A Jinja chat template, detected and rendered.
    case chatTemplate = "chat-template"
    /// JSONL training data (text, prompt/completion, messages).
    case jsonl
    /// A run config file (`lorakit train --config`) as JSON.
    case runConfigJSON = "run-config-json"
    /// A run config file as YAML.
    case runConfigYAML = "run-config-yaml"

    /// Runs one input through the parser.
    public func run(_ bytes: [UInt8]) throws {
        switch self {
        case .gguf: try FuzzFormats.gguf(bytes)
        case .dequantize: try FuzzFormats.dequantize(bytes)
        case .safetensors: try FuzzFormats.safetensors(bytes)
        case .adapterConfig: try FuzzAdapters.config(bytes)
        case .adapterDirectory: try FuzzAdapters.directory(bytes)
        case .tokenizer: try FuzzText.tokenizer(bytes)
        case .chatTemplate: try FuzzText.chatTemplate(bytes)
        case .jsonl: try FuzzText.jsonl(bytes)
        case .runConfigJSON: try FuzzText.runConfig(bytes, fileExtension: "json")
        case .runConfigYAML: try FuzzText.runConfig(bytes, fileExtension: "yaml")
        }
    }
}

/// A parser accepted an input but its result contradicts itself (a silent misread).
public struct FuzzInvariantViolation: Error, CustomStringConvertible {
    public let target: String
    public let reason: String
    public var description: String { "\(target): accepted input violates an invariant: \(reason)" }
}

/// Limits that keep one input's work small, so a fuzz iteration stays fast: parsers must refuse absurd sizes
/// themselves; these only stop the harness from dequantising a legitimately large (but valid) tensor.
enum FuzzLimits {
    static let maxElements = 1 << 20
}

/// A per-process scratch directory; loaders that take a path read the input from a file written here.
enum FuzzScratch {
    static let directory: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("lorakit-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// Writes `bytes` to `name` in the scratch directory (plain write: speed matters here, not durability).
    static func file(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }
}

/// The target libFuzzer's C callback runs (a callback cannot capture context).
public enum FuzzDriver {
    nonisolated(unsafe) public static var target: FuzzTarget = .gguf
}
