// The options of `lorakit train`, from command-line flags and/or a JSON or YAML config file (flags win).
// A config file is a flat mapping whose keys are the flag names, with - or _ (`learning-rate` or `learning_rate`),
// plus the PEFT / mlx-lm spellings users bring along (r, lora_alpha, lora_dropout, target_modules, max_seq_length,
// adapter_path, lr, iterations) and PEFT's AdaLoRA fields (peft_type, init_r, target_r, deltaT, beta1, beta2,
// orth_reg_weight). Unknown keys and wrong types are errors naming the file and key. AdaLoRA's beta1/beta2 are its
// importance EMAs (importance_beta1/2 here), not AdamW's moments.
import Collectives
import Foundation
import PEFT
import Tokenizers
import Yams

/// Every `lorakit train` option; nil means "not given here".
public struct TrainingRunOptions: Equatable, Sendable {
    public var model: String?
    public var data: String?
    public var out: String?
    public var resume: String?
    public var rank: Int?
    public var alpha: Double?
    public var dropout: Double?
    /// "q_proj,v_proj", "all-linear" or "re:<regex>".
    public var targets: String?
    public var iters: Int?
    public var batchSize: Int?
    public var gradAccum: Int?
    public var maxLength: Int?
    public var learningRate: Double?
    public var minLearningRate: Double?
    public var warmup: Int?
    /// cosine, linear or constant.
    public var schedule: String?
    public var weightDecay: Double?
    /// Global gradient-norm limit; 0 turns clipping off.
    public var clip: Double?
    public var evalEvery: Int?
    public var evalBatches: Int?
    public var saveEvery: Int?
    public var keepCheckpoints: Int?
    public var seed: Int?
    public var trainOnPrompt: Bool?
    public var packing: Bool?
    public var chatFormat: String?
    public var overwrite: Bool?
    /// Load a quantized GGUF base as float32.
    public var dequantize: Bool?
    /// Recompute activations in backward (Hugging Face's gradient_checkpointing).
    public var recomputeActivations: Bool?
    /// lora or adalora (default lora).
    public var method: String?
    /// AdaLoRA: rank every module starts with (init_r, default 12) and the target average rank (target_r, default 8).
    public var initRank: Int?
    public var targetRank: Int?
    /// AdaLoRA schedule: warm-up steps, final-phase steps, steps between allocations (defaults: `AdaLoRASchedule`).
    public var tinit: Int?
    public var tfinal: Int?
    public var deltaT: Int?
    /// AdaLoRA importance EMA coefficients (PEFT's beta1 / beta2, default 0.85).
    public var importanceBeta1: Double?
    public var importanceBeta2: Double?
    /// AdaLoRA orthogonal regulariser weight γ (default 0.5) and form: peft or squared.
    public var orthRegWeight: Double?
    public var orthRegForm: String?
    /// Data parallelism: none (one process, the default) or mpi (ranks started by mpirun).
    public var distributed: String?
    /// DoRA (PEFT use_dora), rsLoRA scaling α/√r (use_rslora), LoRA initialisation (init_lora_weights: true/default,
    /// gaussian, pissa, pissa_niter_<K>, olora, false/random) and LoRA+'s B-to-A learning-rate ratio.
    public var dora: Bool?
    public var rslora: Bool?
    public var initLoraWeights: String?
    public var loraplusLrRatio: Double?

    /// No option set.
    public init() {}

    /// Canonical key (snake_case) → aliases accepted in config files.
    static let keys: [(key: String, aliases: [String])] = [
        ("model", ["model_path"]), ("data", ["data_dir"]), ("out", ["output_dir", "adapter_path"]), ("resume", ["resume_from"]),
        ("rank", ["r", "lora_r"]), ("alpha", ["lora_alpha"]), ("dropout", ["lora_dropout"]), ("targets", ["target_modules"]),
        ("iters", ["iterations", "max_steps"]), ("batch_size", []), ("grad_accum", ["gradient_accumulation_steps", "gradient_accumulation"]),
        ("max_length", ["max_seq_length"]), ("learning_rate", ["lr"]), ("min_learning_rate", ["min_lr"]), ("warmup", ["warmup_steps"]),
        ("schedule", ["lr_scheduler_type"]), ("weight_decay", []), ("clip", ["max_grad_norm"]), ("eval_every", ["steps_per_eval", "eval_steps"]),
        ("eval_batches", ["val_batches"]), ("save_every", ["save_steps"]), ("keep_checkpoints", ["save_total_limit"]), ("seed", []),
        ("train_on_prompt", []), ("packing", []), ("chat_format", []), ("overwrite", []), ("dequantize", []),
        ("recompute_activations", ["gradient_checkpointing", "grad_checkpoint"]),
        ("method", ["peft_type"]), ("init_rank", ["init_r"]), ("target_rank", ["target_r"]), ("tinit", []), ("tfinal", []),
        ("delta_t", ["deltat"]), ("importance_beta1", ["beta1"]), ("importance_beta2", ["beta2"]),
        ("orth_reg_weight", []), ("orth_reg_form", []),
        ("distributed", ["distributed_backend"]),
        ("dora", ["use_dora"]), ("rslora", ["use_rslora"]), ("init_lora_weights", ["init"]), ("loraplus_lr_ratio", []),
    ]

    /// Reads a config file: JSON for `.json`, YAML otherwise (`.yaml`, `.yml`).
    public static func load(configFile url: URL) throws -> TrainingRunOptions {
        let path = url.path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainingError.configFile(path: path, key: nil, reason: FileManager.default.fileExists(atPath: path) ? "cannot read" : "no such file")
        }
        var entries: [String: ConfigValue] = [:]
        if url.pathExtension.lowercased() == "json" {
            do { entries = try JSONValue.parseObject(data, source: path).mapValues(ConfigValue.init) } catch {
                throw TrainingError.configFile(path: path, key: nil, reason: "\(error)")
            }
        } else {
            entries = try RunConfigYAMLGuard.entries(String(decoding: data, as: UTF8.self), path: path)
        }
        return try TrainingRunOptions(entries: entries, path: path)
    }

    /// Options from parsed key/values; `path` names the source in errors.
    init(entries: [String: ConfigValue], path: String) throws {
        var canonical: [String: (given: String, value: ConfigValue)] = [:]
        for (given, value) in entries {
            let normalized = given.lowercased().replacingOccurrences(of: "-", with: "_")
            guard let key = Self.keys.first(where: { $0.key == normalized || $0.aliases.contains(normalized) })?.key else {
                throw TrainingError.configFile(path: path, key: given, reason: "unknown option (known: \(Self.keys.map(\.key).joined(separator: ", ")))")
            }
            if let earlier = canonical[key] {
                throw TrainingError.configFile(path: path, key: given, reason: "sets the same option as \"\(earlier.given)\"")
            }
            canonical[key] = (given, value)
        }
        func value<T>(_ key: String, _ convert: (ConfigValue) -> T?, _ expected: String) throws -> T? {
            guard let (given, v) = canonical[key], v != .null else { return nil }
            guard let converted = convert(v) else {
                throw TrainingError.configFile(path: path, key: given, reason: "must be \(expected), got \(v.summary)")
            }
            return converted
        }
        let string = { (v: ConfigValue) -> String? in if case .string(let s) = v { return s }; return nil }
        let int = { (v: ConfigValue) -> Int? in v.integer }, double = { (v: ConfigValue) -> Double? in v.number }
        let bool = { (v: ConfigValue) -> Bool? in v.bool }
        model = try value("model", string, "a path"); data = try value("data", string, "a path")
        out = try value("out", string, "a path"); resume = try value("resume", string, "a path")
        rank = try value("rank", int, "a whole number"); alpha = try value("alpha", double, "a number")
        dropout = try value("dropout", double, "a number")
        targets = try value("targets", { v in
            if case .list(let items) = v {
                let names = items.compactMap { item -> String? in if case .string(let s) = item { return s }; return nil }
                return names.count == items.count && !names.isEmpty ? names.joined(separator: ",") : nil
            }
            return string(v)
        }, "a string (\"q_proj,v_proj\", \"all-linear\") or a list of module names")
        iters = try value("iters", int, "a whole number"); batchSize = try value("batch_size", int, "a whole number")
        gradAccum = try value("grad_accum", int, "a whole number"); maxLength = try value("max_length", int, "a whole number")
        learningRate = try value("learning_rate", double, "a number"); minLearningRate = try value("min_learning_rate", double, "a number")
        warmup = try value("warmup", int, "a whole number"); schedule = try value("schedule", string, "cosine, linear or constant")
        weightDecay = try value("weight_decay", double, "a number"); clip = try value("clip", double, "a number")
        evalEvery = try value("eval_every", int, "a whole number"); evalBatches = try value("eval_batches", int, "a whole number")
        saveEvery = try value("save_every", int, "a whole number"); keepCheckpoints = try value("keep_checkpoints", int, "a whole number")
        seed = try value("seed", int, "a whole number"); trainOnPrompt = try value("train_on_prompt", bool, "true or false")
        packing = try value("packing", bool, "true or false"); chatFormat = try value("chat_format", string, "chatml or llama3")
        overwrite = try value("overwrite", bool, "true or false"); dequantize = try value("dequantize", bool, "true or false")
        recomputeActivations = try value("recompute_activations", bool, "true or false")
        method = try value("method", string, "lora or adalora"); initRank = try value("init_rank", int, "a whole number")
        targetRank = try value("target_rank", int, "a whole number"); tinit = try value("tinit", int, "a whole number")
        tfinal = try value("tfinal", int, "a whole number"); deltaT = try value("delta_t", int, "a whole number")
        importanceBeta1 = try value("importance_beta1", double, "a number"); importanceBeta2 = try value("importance_beta2", double, "a number")
        orthRegWeight = try value("orth_reg_weight", double, "a number"); orthRegForm = try value("orth_reg_form", string, "peft or squared")
        distributed = try value("distributed", string, "mpi or none")
        dora = try value("dora", bool, "true or false"); rslora = try value("rslora", bool, "true or false")
        initLoraWeights = try value("init_lora_weights", { v in
            if case .bool(let b) = v { return b ? "true" : "false" }
            return string(v)
        }, "true, false, gaussian, pissa, pissa_niter_<K> or olora")
        loraplusLrRatio = try value("loraplus_lr_ratio", double, "a number")
    }

    /// These options with every unset one taken from `base` (command-line flags over a config file).
    public func overriding(_ base: TrainingRunOptions) -> TrainingRunOptions {
        var r = self
        func fill<T>(_ path: WritableKeyPath<TrainingRunOptions, T?>) { if r[keyPath: path] == nil { r[keyPath: path] = base[keyPath: path] } }
        fill(\.model); fill(\.data); fill(\.out); fill(\.resume); fill(\.rank); fill(\.alpha); fill(\.dropout); fill(\.targets)
        fill(\.iters); fill(\.batchSize); fill(\.gradAccum); fill(\.maxLength); fill(\.learningRate); fill(\.minLearningRate)
        fill(\.warmup); fill(\.schedule); fill(\.weightDecay); fill(\.clip); fill(\.evalEvery); fill(\.evalBatches)
        fill(\.saveEvery); fill(\.keepCheckpoints); fill(\.seed); fill(\.trainOnPrompt); fill(\.packing); fill(\.chatFormat)
        fill(\.overwrite); fill(\.dequantize); fill(\.recomputeActivations); fill(\.method); fill(\.initRank); fill(\.targetRank); fill(\.tinit); fill(\.tfinal)
        fill(\.deltaT); fill(\.importanceBeta1); fill(\.importanceBeta2); fill(\.orthRegWeight); fill(\.orthRegForm)
        fill(\.distributed)
        fill(\.dora); fill(\.rslora); fill(\.initLoraWeights); fill(\.loraplusLrRatio)
        return r
    }

    /// The run these options describe, defaults filled in and every value checked.
    public func resolved() throws -> TrainingRunPlan {
        guard let model, !model.isEmpty else { throw TrainingError.invalidOption(name: "--model", reason: "required (a .gguf file or a Hugging Face directory)") }
        guard let data, !data.isEmpty else { throw TrainingError.invalidOption(name: "--data", reason: "required (a directory with train.jsonl and valid.jsonl)") }
        var lora = LoRAConfig(r: rank ?? 8, loraAlpha: alpha ?? 16, loraDropout: dropout ?? 0.05,
                              targetModules: ModuleSelector(commandLine: targets ?? "q_proj,v_proj"))
        if case .names(let names) = lora.targetModules, names.isEmpty {
            throw TrainingError.invalidOption(name: "--targets", reason: "no module names in \"\(targets ?? "")\"")
        }
        lora.baseModelNameOrPath = model
        lora.useDoRA = dora ?? false
        lora.useRSLoRA = rslora ?? false
        if let initLoraWeights {
            do { lora.initialization = try LoRAInitialization(name: initLoraWeights) } catch {
                throw TrainingError.invalidOption(name: "--init", reason: "\(error)")
            }
        }
        do { try lora.validate() } catch { throw TrainingError.invalidOption(name: "LoRA", reason: "\(error)") }
        let maxLength = self.maxLength ?? 2048
        var trainer = TrainerConfiguration(outputDirectory: URL(fileURLWithPath: out ?? "adapters"))
        trainer.iterations = iters ?? trainer.iterations
        trainer.batchSize = batchSize ?? trainer.batchSize
        trainer.gradientAccumulation = gradAccum ?? trainer.gradientAccumulation
        trainer.learningRate = learningRate ?? trainer.learningRate
        trainer.minLearningRate = minLearningRate ?? 0
        trainer.warmupSteps = warmup ?? trainer.warmupSteps
        if let schedule {
            guard let decay = LRDecay(rawValue: schedule.lowercased()) else {
                throw TrainingError.invalidOption(name: "--schedule", reason: "\"\(schedule)\" is not one of cosine, linear, constant")
            }
            trainer.decay = decay
        }
        trainer.weightDecay = weightDecay ?? trainer.weightDecay
        if let clip { trainer.clipNorm = clip == 0 ? nil : Float(clip) }
        trainer.evalEvery = evalEvery ?? trainer.evalEvery
        trainer.evalBatches = evalBatches
        trainer.saveEvery = saveEvery ?? trainer.saveEvery
        trainer.keepCheckpoints = keepCheckpoints ?? trainer.keepCheckpoints
        if let seed {
            guard seed >= 0 else { throw TrainingError.invalidOption(name: "--seed", reason: "\(seed) must be ≥ 0") }
            trainer.seed = UInt64(seed)
        }
        trainer.packLength = packing == true ? maxLength : nil
        trainer.overwriteOutput = overwrite ?? false
        trainer.recomputeActivations = recomputeActivations ?? false
        trainer.loraPlusLearningRateRatio = loraplusLrRatio
        try trainer.validate()
        if let chatFormat, ChatFormat(rawValue: chatFormat.lowercased()) == nil {
            throw TrainingError.invalidOption(name: "--chat-format", reason: "\"\(chatFormat)\" is not one of chatml, llama3")
        }
        let method = try resolvedMethod(lora: lora, iterations: trainer.iterations)
        let backend: DistributedBackend
        do { backend = try DistributedBackend(parsing: distributed ?? "none") } catch {
            throw TrainingError.invalidOption(name: "--distributed", reason: "\"\(distributed ?? "")\" is not one of mpi, none")
        }
        var plan = TrainingRunPlan(modelPath: model, dataPath: URL(fileURLWithPath: data), resume: resume.map { URL(fileURLWithPath: $0) },
                               chatFormat: chatFormat?.lowercased(), dequantize: dequantize ?? false, method: method,
                               encoding: EncodingOptions(maxLength: maxLength, trainOnPrompt: trainOnPrompt ?? false), trainer: trainer)
        plan.distributed = backend
        return plan
    }
}

/// A fully resolved `lorakit train` run.
public struct TrainingRunPlan: Sendable {
    public let modelPath: String
    public let dataPath: URL
    public let resume: URL?
    /// --chat-format override (nil: the model's own template).
    public let chatFormat: String?
    /// Load a quantized base as float32.
    public let dequantize: Bool
    /// LoRA or AdaLoRA with its config (AdaLoRA's total_step = the iterations).
    public let method: AdapterMethod
    /// The LoRA fields of `method` (for AdaLoRA: those that still apply).
    public var lora: LoRAConfig { method.loraConfig }
    public let encoding: EncodingOptions
    public let trainer: TrainerConfiguration
    /// Data parallelism (`--distributed`): one process, or the ranks of an mpirun job.
    public var distributed: DistributedBackend = .none
}

/// A config-file value, whichever parser read it.
enum ConfigValue: Equatable {
    case null, bool(Bool), number(Double), string(String), list([ConfigValue]), mapping

    init(_ json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let d): self = .number(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(ConfigValue.init))
        case .object: self = .mapping
        }
    }

    init(yaml: Any) {
        switch yaml {
        case let b as Bool: self = .bool(b)
        case let i as Int: self = .number(Double(i))
        case let d as Double: self = .number(d)
        case let s as String: self = .string(s)
        case let a as [Any]: self = .list(a.map(ConfigValue.init(yaml:)))
        case is [String: Any], is [AnyHashable: Any]: self = .mapping
        default: self = .null
        }
    }

    /// Numbers; also numeric strings, since YAML 1.1 reads `1e-4` (no dot) as a string.
    var number: Double? {
        switch self {
        case .number(let d): return d.isFinite ? d : nil
        case .string(let s): return Double(s.trimmingCharacters(in: .whitespaces)).flatMap { $0.isFinite ? $0 : nil }
        default: return nil
        }
    }

    var integer: Int? { number.flatMap { $0 == $0.rounded() && abs($0) < 9e15 ? Int($0) : nil } }

    var bool: Bool? {
        switch self {
        case .bool(let b): return b
        case .string(let s): return ["true": true, "false": false][s.lowercased()]
        default: return nil
        }
    }

    var summary: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let d): return d == d.rounded() && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .string(let s): return "\"\(s)\""
        case .list: return "a list"
        case .mapping: return "a mapping"
        }
    }
}
