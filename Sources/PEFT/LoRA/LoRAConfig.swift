// LoRA configuration with PEFT's field names and semantics (spec §1). Saved as `adapter_config.json`.
import Foundation

/// How LoRA weights start (spec §1.4).
public enum LoRAInitialization: Equatable, Sendable {
    /// A ~ kaiming-uniform U(−1/√in, 1/√in), B = 0: the adapter starts as a no-op (PEFT `true`).
    case standard
    /// A ~ N(0, 1/r), B = 0 (PEFT `"gaussian"`).
    case gaussian
    /// Both A and B random (PEFT `false`): output differs from the base; for tests and debugging.
    case random
    /// Principal singular vectors; the base keeps the residual (PEFT `"pissa"`, `"pissa_niter_K"`).
    case pissa(powerIterations: Int?)
    /// QR of the base weight; the base keeps W − s·B·A (PEFT `"olora"`).
    case olora

    public init(json: JSONValue) throws {
        switch json {
        case .bool(true): self = .standard
        case .bool(false): self = .random
        case .string(let s): try self.init(name: s)
        default: throw PEFTError.invalidConfig(field: "init_lora_weights", reason: "must be true, false or a method name")
        }
    }

    public init(name: String) throws {
        let s = name.lowercased()
        switch s {
        case "true", "default", "kaiming": self = .standard
        case "false", "random": self = .random
        case "gaussian": self = .gaussian
        case "pissa": self = .pissa(powerIterations: nil)
        case "olora": self = .olora
        default:
            if s.hasPrefix("pissa_niter_"), let k = Int(s.dropFirst("pissa_niter_".count)), k >= 0 {
                self = .pissa(powerIterations: k)
            } else {
                throw PEFTError.invalidConfig(field: "init_lora_weights",
                    reason: "unknown initialisation '\(name)'; use true, false, gaussian, pissa, pissa_niter_<K> or olora")
            }
        }
    }

    public var json: JSONValue {
        switch self {
        case .standard: return .bool(true)
        case .random: return .bool(false)
        case .gaussian: return .string("gaussian")
        case .pissa(let k): return .string(k.map { "pissa_niter_\($0)" } ?? "pissa")
        case .olora: return .string("olora")
        }
    }

    /// PiSSA and OLoRA change the base weights, so they need the weights at injection time.
    public var mutatesBase: Bool { if case .pissa = self { return true }; return self == .olora }
}

public enum LoRABias: String, Sendable { case none, all, loraOnly = "lora_only" }

public struct LoRAConfig: Equatable, Sendable {
    public var r: Int = 8
    public var loraAlpha: Double = 8
    public var loraDropout: Double = 0
    public var targetModules: ModuleSelector? = nil
    public var excludeModules: ModuleSelector? = nil
    public var layersToTransform: [Int]? = nil
    public var layersPattern: [String]? = nil
    /// Per-module overrides; the first key (in this order) whose `(.*\.)?(key)$` matches wins.
    public var rankPattern: [(key: String, value: Int)] = []
    public var alphaPattern: [(key: String, value: Double)] = []
    public var useRSLoRA = false
    /// DoRA (PEFT `use_dora`): a trainable magnitude per output row times the row-normalised direction W + s·B·A.
    public var useDoRA = false
    public var initialization: LoRAInitialization = .standard
    public var bias: LoRABias = .none
    public var modulesToSave: [String]? = nil
    public var taskType: String? = "CAUSAL_LM"
    public var baseModelNameOrPath: String? = nil
    /// Fields we keep but do not interpret (newer PEFT versions, variants we do not implement).
    public var extra: [String: JSONValue] = [:]

    public init(r: Int = 8, loraAlpha: Double = 8, loraDropout: Double = 0, targetModules: ModuleSelector? = nil) {
        self.r = r; self.loraAlpha = loraAlpha; self.loraDropout = loraDropout; self.targetModules = targetModules
    }

    public static func == (a: LoRAConfig, b: LoRAConfig) -> Bool {
        a.r == b.r && a.loraAlpha == b.loraAlpha && a.loraDropout == b.loraDropout && a.targetModules == b.targetModules
            && a.excludeModules == b.excludeModules && a.layersToTransform == b.layersToTransform
            && a.layersPattern == b.layersPattern && a.rankPattern.map(\.key) == b.rankPattern.map(\.key)
            && a.rankPattern.map(\.value) == b.rankPattern.map(\.value) && a.alphaPattern.map(\.key) == b.alphaPattern.map(\.key)
            && a.alphaPattern.map(\.value) == b.alphaPattern.map(\.value) && a.useRSLoRA == b.useRSLoRA && a.useDoRA == b.useDoRA
            && a.initialization == b.initialization && a.bias == b.bias && a.modulesToSave == b.modulesToSave
            && a.taskType == b.taskType && a.baseModelNameOrPath == b.baseModelNameOrPath && a.extra == b.extra
    }

    /// Checks values PEFT would reject, with messages that say how to fix them.
    public func validate() throws {
        guard r > 0 else { throw PEFTError.invalidConfig(field: "r", reason: "`r` should be a positive integer value but the value passed is \(r)") }
        guard loraAlpha.isFinite, loraAlpha > 0 else { throw PEFTError.invalidConfig(field: "lora_alpha", reason: "must be a positive number, got \(loraAlpha)") }
        guard (0..<1).contains(loraDropout) else { throw PEFTError.invalidConfig(field: "lora_dropout", reason: "must be in [0, 1), got \(loraDropout)") }
        if layersPattern != nil && layersToTransform == nil {
            throw PEFTError.invalidConfig(field: "layers_pattern", reason: "requires layers_to_transform")
        }
        if layersToTransform != nil, case .regex = targetModules {
            throw PEFTError.invalidConfig(field: "layers_to_transform", reason: "cannot be used when target_modules is a regex string")
        }
        for (key, value) in rankPattern where value <= 0 {
            throw PEFTError.invalidConfig(field: "rank_pattern", reason: "rank for '\(key)' must be positive, got \(value)")
        }
        for (key, value) in alphaPattern where !(value.isFinite && value > 0) {
            throw PEFTError.invalidConfig(field: "alpha_pattern", reason: "alpha for '\(key)' must be positive, got \(value)")
        }
        for (key, _) in rankPattern { _ = try PatternMatch.firstMatch("(.*\\.)?(\(key))$", "") }
        for (key, _) in alphaPattern { _ = try PatternMatch.firstMatch("(.*\\.)?(\(key))$", "") }
    }

    /// Whether `module` gets this adapter (targets, exclusions and layer filter; spec §1.2).
    public func targets(_ module: String, outputHeadNames: Set<String> = ["lm_head"]) throws -> Bool {
        guard let selector = targetModules else { return false }
        guard try selector.matches(module, outputHeadNames: outputHeadNames) else { return false }
        if let exclude = excludeModules, try exclude.matches(module, outputHeadNames: []) { return false }
        if let layers = layersToTransform {
            guard let index = try PatternMatch.layerIndex(of: module, layersPattern: layersPattern) else { return false }
            return layers.contains(index)
        }
        return true
    }

    /// The rank and scaling for one module after rank/alpha patterns (resolved independently).
    public func resolved(for module: String) throws -> (r: Int, alpha: Double, scaling: Double) {
        var rank = r, alpha = loraAlpha
        if let key = try PatternMatch.patternKey(for: module, keys: rankPattern.map(\.key)) {
            rank = rankPattern.first { $0.key == key }!.value
        }
        if let key = try PatternMatch.patternKey(for: module, keys: alphaPattern.map(\.key)) {
            alpha = alphaPattern.first { $0.key == key }!.value
        }
        let scaling = useRSLoRA ? alpha / Double(rank).squareRoot() : alpha / Double(rank)
        return (rank, alpha, scaling)
    }
}
