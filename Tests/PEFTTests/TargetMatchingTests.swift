import XCTest
import PEFT
import TestSupport

final class TargetMatchingTests: XCTestCase {
    /// PEFT's REGEX_TEST_CASES (test_tuners_utils.py), spec §5 item 29.
    func testPEFTMatchingTable() throws {
        func matches(_ key: String, _ targets: ModuleSelector, layers: [Int]? = nil, pattern: [String]? = nil) throws -> Bool {
            var c = LoRAConfig(targetModules: targets)
            c.layersToTransform = layers; c.layersPattern = pattern
            return try c.targets(key)
        }
        XCTAssertTrue(try matches("foo", .regex(".*oo")))
        XCTAssertFalse(try matches("foo", .regex(".*bar.*")))
        XCTAssertTrue(try matches("foo.bar.1.baz", .names(["baz"]), layers: [1], pattern: ["bar"]))
        XCTAssertFalse(try matches("foo.bar.10.baz", .names(["baz"]), layers: [1], pattern: ["bar"]))
        XCTAssertTrue(try matches("foo.bar.001.baz", .names(["baz"]), layers: [1], pattern: ["bar"]))
        XCTAssertFalse(try matches("bar.1.baz", .names(["baz"]), layers: [1], pattern: ["bar"]))
        XCTAssertTrue(try matches("mlp.blocks.1.weight", .names(["weight"]), layers: [1], pattern: ["blocks"]))
        XCTAssertFalse(try matches("transformer.h.1.attn.attention.q_proj.foo", .names(["q_proj"])))
        // Dot boundary: a list entry matches whole trailing components only.
        XCTAssertTrue(try matches("model.layers.0.self_attn.q_proj", .names(["q_proj"])))
        XCTAssertFalse(try matches("model.layers.0.self_attn.xq_proj", .names(["q_proj"])))
        XCTAssertTrue(try matches("model.layers.0.self_attn.q_proj", .names(["self_attn.q_proj"])))
        // Regex is a full match, not a search.
        XCTAssertFalse(try matches("model.layers.0.self_attn.q_proj", .regex("q_proj")))
        XCTAssertTrue(try matches("model.layers.0.self_attn.q_proj", .regex(".*\\.(q|v)_proj")))
        // all-linear never takes the output head.
        XCTAssertTrue(try matches("model.layers.3.mlp.down_proj", .allLinear))
        XCTAssertFalse(try matches("lm_head", .allLinear))
    }

    func testExcludeAndLayerIndexWithoutPattern() throws {
        var c = LoRAConfig(targetModules: .names(["q_proj", "v_proj"]))
        c.excludeModules = .names(["model.layers.1.self_attn.v_proj"])
        XCTAssertTrue(try c.targets("model.layers.1.self_attn.q_proj"))
        XCTAssertFalse(try c.targets("model.layers.1.self_attn.v_proj"))
        c.layersToTransform = [0]
        XCTAssertTrue(try c.targets("model.layers.0.self_attn.v_proj"))
        XCTAssertFalse(try c.targets("model.layers.1.self_attn.q_proj"))
    }

    func testRankAndAlphaPatternsFirstMatchWins() throws {
        var c = LoRAConfig(r: 8, loraAlpha: 16, targetModules: .names(["q_proj"]))
        c.rankPattern = [("layers.0.self_attn.q_proj", 2), ("q_proj", 4)]
        c.alphaPattern = [("q_proj", 32)]
        let first = try c.resolved(for: "model.layers.0.self_attn.q_proj")
        XCTAssertEqual(first.r, 2); XCTAssertEqual(first.alpha, 32); XCTAssertEqual(first.scaling, 16)
        let other = try c.resolved(for: "model.layers.1.self_attn.q_proj")
        XCTAssertEqual(other.r, 4); XCTAssertEqual(other.scaling, 8)
        // Anchored keys: "^foo" only matches a top-level module; a partial component does not match.
        c.rankPattern = [("proj", 3)]
        XCTAssertEqual(try c.resolved(for: "model.layers.1.self_attn.q_proj").r, 8)
        c.useRSLoRA = true
        XCTAssertEqual(try c.resolved(for: "a.q_proj").scaling, 32 / 8.0.squareRoot(), accuracy: 1e-12)
    }

    func testValidationMessages() {
        XCTAssertThrowsError(try LoRAConfig(r: 0).validate()) { e in
            XCTAssertTrue("\(e)".contains("positive integer"), "\(e)")
        }
        XCTAssertThrowsError(try LoRAConfig(r: -2).validate())
        XCTAssertThrowsError(try LoRAInitialization(name: "xavier")) { e in XCTAssertTrue("\(e)".contains("xavier")) }
        var c = LoRAConfig(targetModules: .regex(".*"))
        c.layersToTransform = [0]
        XCTAssertThrowsError(try c.validate())
        var bad = LoRAConfig(targetModules: .names(["q"]))
        bad.rankPattern = [("(", 2)]
        XCTAssertThrowsError(try bad.validate())
    }

    func testPEFTConfigFileRoundTrip() throws {
        let url = Fixtures.url("peft/llama_rslora/adapter/adapter_config.json")
        let config = try LoRAConfig.load(from: url)
        XCTAssertEqual(config.r, 4); XCTAssertEqual(config.loraAlpha, 8); XCTAssertTrue(config.useRSLoRA)
        XCTAssertEqual(config.targetModules, .names(["q_proj", "v_proj"]))
        XCTAssertEqual(config.initialization, .standard)
        // Writing it back gives PEFT's own file, key for key and value for value.
        let original = try JSONValue.parseObject(Data(contentsOf: url), source: url.path)
        let written = try JSONValue.parseObject(JSONValue.serialize(config.jsonObject()), source: "written")
        XCTAssertEqual(Set(written.keys), Set(original.keys))
        for (k, v) in original where k != "auto_mapping" { XCTAssertEqual(written[k], v, k) }
    }

    func testRejectsUnsupportedVariantsAndBadJSON() throws {
        let dora = try LoRAConfig.load(from: Fixtures.url("peft/llama_lora/adapter/adapter_config.json"))
        var object = dora.jsonObject(); object["lora_bias"] = .bool(true)
        XCTAssertThrowsError(try LoRAConfig(json: object)) { e in XCTAssertTrue("\(e)".contains("lora_bias")) }
        XCTAssertThrowsError(try JSONValue.parseObject(Data("{\"r\": 4,\n \"x\": tru}".utf8), source: "c.json")) { e in
            XCTAssertTrue("\(e)".contains("line 2"), "\(e)")
        }
    }
}
