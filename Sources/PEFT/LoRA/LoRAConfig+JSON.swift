// adapter_config.json in PEFT's exact field names; unknown fields survive a load → save round trip.
import Foundation

extension LoRAConfig {
    /// Fields PEFT 0.21 writes that LoRAKit does not interpret, with the values PEFT writes by default.
    static let peftDefaults: [String: JSONValue] = [
        "alora_invocation_tokens": .null, "arrow_config": .null, "auto_mapping": .null, "corda_config": .null,
        "ensure_weight_tying": .bool(false), "eva_config": .null, "fan_in_fan_out": .bool(false),
        "kasa_config": .null, "layer_replication": .null, "loftq_config": .object([:]), "lora_bias": .bool(false),
        "lora_ga_config": .null, "megatron_config": .null, "megatron_core": .string("megatron.core"),
        "monteclora_config": .null, "qalora_group_size": .number(16), "revision": .null,
        "target_parameters": .null, "trainable_token_indices": .null, "use_bdlora": .null, "use_dora": .bool(false),
        "use_qalora": .bool(false), "velora_config": .null,
    ]

    /// Variants whose math LoRAKit does not implement: loading them would silently compute something else.
    static let unsupportedWhenTrue = ["lora_bias", "fan_in_fan_out", "use_qalora", "use_bdlora"]

    public init(json object: [String: JSONValue], source: String = "adapter_config.json") throws {
        self.init()
        func field<T>(_ key: String, _ convert: (JSONValue) -> T?) throws -> T? {
            guard let v = object[key], !v.isNull else { return nil }
            guard let t = convert(v) else { throw PEFTError.invalidConfig(field: key, reason: "\(source): unexpected value \(v.anyValue)") }
            return t
        }
        if let peftType = object["peft_type"]?.stringValue, peftType != "LORA" && peftType != "ADALORA" {
            throw PEFTError.invalidConfig(field: "peft_type", reason: "\(source): '\(peftType)' is not supported (LORA, ADALORA)")
        }
        for key in Self.unsupportedWhenTrue where object[key]?.boolValue == true {
            throw PEFTError.invalidConfig(field: key, reason: "\(source): \(key) = true is not supported by LoRAKit")
        }
        r = try field("r", \.intValue) ?? 8
        loraAlpha = try field("lora_alpha", \.doubleValue) ?? 8
        loraDropout = try field("lora_dropout", \.doubleValue) ?? 0
        if let t = object["target_modules"], !t.isNull { targetModules = try ModuleSelector(json: t, field: "target_modules") }
        if let t = object["exclude_modules"], !t.isNull { excludeModules = try ModuleSelector(json: t, field: "exclude_modules") }
        if let l = object["layers_to_transform"], !l.isNull {
            if let i = l.intValue { layersToTransform = [i] }
            else { layersToTransform = try field("layers_to_transform") { $0.arrayValue?.compactMap(\.intValue) } }
        }
        if let p = object["layers_pattern"], !p.isNull {
            if let s = p.stringValue { layersPattern = [s] }
            else { layersPattern = try field("layers_pattern") { $0.arrayValue?.compactMap(\.stringValue) } }
        }
        // PEFT saves with sorted keys, so sorted order is also the order PEFT itself sees after a reload.
        if let rp = try field("rank_pattern", \.objectValue) {
            rankPattern = try rp.keys.sorted().map { k in
                guard let v = rp[k]?.intValue else {
                    // AdaLoRA stores boolean masks here; the AdaLoRA loader interprets those.
                    if rp[k]?.arrayValue != nil && object["peft_type"]?.stringValue == "ADALORA" { return (k, -1) }
                    throw PEFTError.invalidConfig(field: "rank_pattern", reason: "\(source): value for '\(k)' is not an integer")
                }
                return (k, v)
            }.filter { $0.1 > 0 }
        }
        if let ap = try field("alpha_pattern", \.objectValue) {
            alphaPattern = try ap.keys.sorted().map { k in
                guard let v = ap[k]?.doubleValue else { throw PEFTError.invalidConfig(field: "alpha_pattern", reason: "\(source): value for '\(k)' is not a number") }
                return (k, v)
            }
        }
        useRSLoRA = try field("use_rslora", \.boolValue) ?? false
        useDoRA = try field("use_dora", \.boolValue) ?? false
        if let i = object["init_lora_weights"], !i.isNull { initialization = try LoRAInitialization(json: i) }
        if let b = try field("bias", \.stringValue) {
            guard let parsed = LoRABias(rawValue: b) else { throw PEFTError.invalidConfig(field: "bias", reason: "\(source): '\(b)' is not none, all or lora_only") }
            bias = parsed
        }
        modulesToSave = try field("modules_to_save") { $0.arrayValue?.compactMap(\.stringValue) }
        taskType = try field("task_type", \.stringValue)
        baseModelNameOrPath = try field("base_model_name_or_path", \.stringValue)
        let known: Set<String> = ["r", "lora_alpha", "lora_dropout", "target_modules", "exclude_modules", "layers_to_transform",
                                  "layers_pattern", "rank_pattern", "alpha_pattern", "use_rslora", "use_dora", "init_lora_weights", "bias",
                                  "modules_to_save", "task_type", "base_model_name_or_path", "peft_type", "inference_mode",
                                  "peft_version", "runtime_config"]
        extra = object.filter { !known.contains($0.key) }
    }

    /// The JSON object PEFT would write for this config (`inference_mode` is always true in saved files).
    public func jsonObject(peftType: String = "LORA") -> [String: JSONValue] {
        var o = Self.peftDefaults.merging(extra) { _, new in new }
        o["peft_type"] = .string(peftType)
        o["peft_version"] = .string("0.21.2")
        o["inference_mode"] = .bool(true)
        o["r"] = .number(Double(r))
        o["lora_alpha"] = .number(loraAlpha)
        o["lora_dropout"] = .number(loraDropout)
        o["target_modules"] = targetModules?.json ?? .null
        o["exclude_modules"] = excludeModules?.json ?? .null
        o["layers_to_transform"] = layersToTransform.map { .array($0.map { .number(Double($0)) }) } ?? .null
        o["layers_pattern"] = layersPattern.map { $0.count == 1 ? .string($0[0]) : .array($0.map(JSONValue.string)) } ?? .null
        if o["rank_pattern"] == nil || peftType == "LORA" {
            o["rank_pattern"] = .object(Dictionary(uniqueKeysWithValues: rankPattern.map { ($0.key, .number(Double($0.value))) }))
        }
        o["alpha_pattern"] = .object(Dictionary(uniqueKeysWithValues: alphaPattern.map { ($0.key, .number($0.value)) }))
        o["use_rslora"] = .bool(useRSLoRA)
        o["use_dora"] = .bool(useDoRA)
        o["init_lora_weights"] = initialization.json
        o["bias"] = .string(bias.rawValue)
        o["modules_to_save"] = modulesToSave.map { .array($0.map(JSONValue.string)) } ?? .null
        o["task_type"] = taskType.map(JSONValue.string) ?? .null
        o["base_model_name_or_path"] = baseModelNameOrPath.map(JSONValue.string) ?? .null
        return o
    }

    public static func load(from url: URL) throws -> LoRAConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw PEFTError.file(path: url.path, reason: "cannot read (\(error.localizedDescription))") }
        return try LoRAConfig(json: JSONValue.parseObject(data, source: url.path), source: url.path)
    }
}
