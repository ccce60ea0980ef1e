// adapter_config.json for AdaLoRA: PEFT's LoRA fields plus init_r, target_r, tinit, tfinal, deltaT, beta1, beta2,
// orth_reg_weight, total_step and the boolean rank_pattern (spec §4.4). Unknown fields survive load → save.
import Foundation

extension AdaLoRAConfig {
    /// The AdaLoRA-only keys (everything else is a LoRA key or kept verbatim in `lora.extra`).
    static let ownKeys: Set<String> = ["init_r", "target_r", "tinit", "tfinal", "deltaT", "beta1", "beta2",
                                       "orth_reg_weight", "total_step"]

    /// Parses a PEFT AdaLoRA config object (`peft_type` must be ADALORA or absent). Values are not validated here;
    /// call `validate()`.
    public init(json object: [String: JSONValue], source: String = "adapter_config.json") throws {
        if let type = object["peft_type"], type.stringValue != "ADALORA" {
            throw PEFTError.invalidConfig(field: "peft_type", reason: "\(source): expected \"ADALORA\", got \(type.anyValue); "
                + "load LoRA adapters with AdapterFiles.loadLoRA or AdapterFiles.load")
        }
        if let loftq = object["loftq_config"]?.objectValue, !loftq.isEmpty {
            throw PEFTError.invalidConfig(field: "loftq_config", reason: "\(source): ADALORA does not support LOFTQ; remove loftq_config")
        }
        var shared = object
        shared["peft_type"] = .string("ADALORA")  // lets the LoRA parser accept boolean rank_pattern lists
        lora = try LoRAConfig(json: shared, source: source)
        if lora.useDoRA {  // PEFT: "AdaLoRA does not support DoRA"
            throw PEFTError.doraUnsupported(adapter: nil, module: nil, reason: "\(source): AdaLoRA (peft_type ADALORA) does not support use_dora; train a LoRA adapter with use_dora instead")
        }
        for key in Self.ownKeys { lora.extra[key] = nil }
        lora.extra["rank_pattern"] = nil
        func int(_ key: String) throws -> Int? {
            guard let v = object[key], !v.isNull else { return nil }
            guard let i = v.intValue else { throw PEFTError.invalidConfig(field: key, reason: "\(source): \(v.anyValue) is not an integer") }
            return i
        }
        func double(_ key: String) throws -> Double? {
            guard let v = object[key], !v.isNull else { return nil }
            guard let d = v.doubleValue else { throw PEFTError.invalidConfig(field: key, reason: "\(source): \(v.anyValue) is not a number") }
            return d
        }
        initR = try int("init_r") ?? 12
        targetR = try int("target_r") ?? 8
        tinit = try int("tinit") ?? 0
        tfinal = try int("tfinal") ?? 0
        deltaT = try int("deltaT") ?? 1
        beta1 = try double("beta1") ?? 0.85
        beta2 = try double("beta2") ?? 0.85
        orthRegWeight = try double("orth_reg_weight") ?? 0.5
        totalStep = try int("total_step")
        rankPattern = nil
        if let rp = object["rank_pattern"], !rp.isNull {
            guard let entries = rp.objectValue else {
                throw PEFTError.invalidConfig(field: "rank_pattern", reason: "\(source): must be an object of boolean lists or null")
            }
            var pattern: [String: [Bool]] = [:]
            for (key, value) in entries {
                guard let list = value.arrayValue else {
                    throw PEFTError.invalidConfig(field: "rank_pattern", reason: "\(source): value for '\(key)' is not a list of booleans")
                }
                pattern[key] = try list.map {
                    guard let b = $0.boolValue else {
                        throw PEFTError.invalidConfig(field: "rank_pattern", reason: "\(source): '\(key)' contains \($0.anyValue), not a boolean")
                    }
                    return b
                }
            }
            // PEFT writes `{}` before allocation in some versions and null in others; both mean "no pattern".
            rankPattern = pattern.isEmpty ? nil : pattern
        }
    }

    /// The JSON object PEFT writes for this config (sorted on serialisation; `inference_mode` true).
    public func jsonObject() -> [String: JSONValue] {
        var o = lora.jsonObject(peftType: "ADALORA")
        o["init_r"] = .number(Double(initR))
        o["target_r"] = .number(Double(targetR))
        o["tinit"] = .number(Double(tinit))
        o["tfinal"] = .number(Double(tfinal))
        o["deltaT"] = .number(Double(deltaT))
        o["beta1"] = .number(beta1)
        o["beta2"] = .number(beta2)
        o["orth_reg_weight"] = .number(orthRegWeight)
        o["total_step"] = totalStep.map { .number(Double($0)) } ?? .null
        o["rank_pattern"] = rankPattern.map { .object($0.mapValues { .array($0.map(JSONValue.bool)) }) } ?? .null
        return o
    }

    /// Reads and parses `adapter_config.json` (not validated; call `validate()`).
    public static func load(from url: URL) throws -> AdaLoRAConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw PEFTError.file(path: url.path, reason: "cannot read (\(error.localizedDescription))") }
        return try AdaLoRAConfig(json: JSONValue.parseObject(data, source: url.path), source: url.path)
    }
}
