import XCTest
import PEFT
import TestSupport

final class AdaLoRAConfigTests: XCTestCase {
    func valid(total: Int = 100, tinit: Int = 0, tfinal: Int = 0) -> AdaLoRAConfig {
        AdaLoRAConfig(initR: 12, targetR: 8, tinit: tinit, tfinal: tfinal, totalStep: total, targetModules: .names(["q_proj"]))
    }

    func assertInvalid(_ config: AdaLoRAConfig, field: String, mentions words: [String], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try config.validate(), file: file, line: line) { error in
            guard case let PEFTError.invalidConfig(f, reason) = error else { return XCTFail("\(error)", file: file, line: line) }
            XCTAssertEqual(f, field, file: file, line: line)
            for w in words { XCTAssertTrue(reason.contains(w), "'\(reason)' lacks '\(w)'", file: file, line: line) }
        }
    }

    /// PEFT test_config.py::test_adalora_config_valid_timing_works / ..._timing_bounds_error (spec §5 item 15).
    func testScheduleBoundsMatchPEFT() throws {
        for (tinit, tfinal) in [(0, 0), (10, 10), (79, 20), (80, 19)] { XCTAssertNoThrow(try valid(tinit: tinit, tfinal: tfinal).validate()) }
        for (tinit, tfinal) in [(80, 20), (100, 0), (0, 100), (60, 60)] {
            assertInvalid(valid(tinit: tinit, tfinal: tfinal), field: "tinit", mentions: ["budgeting phase", "decrease tfinal or tinit", "increase total_step"])
        }
    }

    /// test_adalora_config_invalid_total_step_raises: None and ≤ 0.
    func testTotalStepIsRequired() {
        var c = valid()
        c.totalStep = nil
        assertInvalid(c, field: "total_step", mentions: ["total_step > 0", "null"])
        c.totalStep = 0
        assertInvalid(c, field: "total_step", mentions: ["got 0"])
        c.totalStep = -5
        assertInvalid(c, field: "total_step", mentions: ["-5"])
    }

    func testRanksBetasWeightAndIntervalAreChecked() {
        var c = valid(); c.targetR = 12
        assertInvalid(c, field: "target_r", mentions: ["smaller than init_r (12)", "lower target_r or raise init_r"])
        c.targetR = 13
        assertInvalid(c, field: "target_r", mentions: ["13"])
        c.targetR = 0
        assertInvalid(c, field: "target_r", mentions: ["positive"])
        c = valid(); c.initR = 0
        assertInvalid(c, field: "init_r", mentions: ["at least 1"])
        for beta in [0.0, 1.0, -0.1, 1.5, .nan] {
            c = valid(); c.beta1 = beta
            assertInvalid(c, field: "beta1", mentions: ["between 0 and 1"])
            c = valid(); c.beta2 = beta
            assertInvalid(c, field: "beta2", mentions: ["between 0 and 1"])
        }
        // test_adalora_negative_orth_reg_weight_raises
        c = valid(); c.orthRegWeight = -0.1
        assertInvalid(c, field: "orth_reg_weight", mentions: ["≥ 0"])
        c = valid(); c.orthRegWeight = 0
        XCTAssertNoThrow(try c.validate())
        c = valid(); c.deltaT = 0
        assertInvalid(c, field: "deltaT", mentions: ["at least 1"])
        c = valid(); c.tinit = -1
        assertInvalid(c, field: "tinit", mentions: ["≥ 0"])
        c = valid(); c.lora.initialization = .gaussian
        assertInvalid(c, field: "init_lora_weights", mentions: ["only true"])
        c = valid(); c.rankPattern = ["q_proj.lora_E": [true, false]]
        assertInvalid(c, field: "rank_pattern", mentions: ["2 entries", "init_r is 12"])
        // lora_alpha = 0 is legal in PEFT: the scaling falls back to init_r.
        c = valid(); c.lora.loraAlpha = 0
        XCTAssertNoThrow(try c.validate())
        XCTAssertEqual(c.scaling, 12)
    }

    /// test_adalora_use_dora_raises / test_adalora_loftq_config_raises, on the JSON path.
    func testDoRAAndLoftQAreRejected() throws {
        XCTAssertThrowsError(try AdaLoRAConfig(json: ["peft_type": .string("ADALORA"), "use_dora": .bool(true)]))
        XCTAssertThrowsError(try AdaLoRAConfig(json: ["peft_type": .string("ADALORA"), "loftq_config": .object(["loftq_bits": .number(4)])])) { e in
            XCTAssertTrue("\(e)".contains("LOFTQ"), "\(e)")
        }
        XCTAssertThrowsError(try AdaLoRAConfig(json: ["peft_type": .string("LORA")])) { e in XCTAssertTrue("\(e)".contains("ADALORA")) }
        XCTAssertThrowsError(try AdaLoRAConfig(json: ["peft_type": .string("ADALORA"), "rank_pattern": .object(["m.lora_E": .array([.number(1)])])]))
        XCTAssertThrowsError(try AdaLoRAConfig(json: ["peft_type": .string("ADALORA"), "init_r": .number(2.5)])) { e in
            XCTAssertTrue("\(e)".contains("init_r"))
        }
    }

    /// The fixture's config (written by PEFT 0.21.2) parses to the values PEFT trained with and round-trips.
    func testFixtureConfigParsesAndRoundTrips() throws {
        let url = Fixtures.url("peft/llama_adalora/adapter/adapter_config.json")
        let config = try AdaLoRAConfig.load(from: url)
        try config.validate()
        XCTAssertEqual([config.initR, config.targetR, config.tinit, config.tfinal, config.deltaT, config.totalStep], [6, 2, 2, 2, 1, 8])
        XCTAssertEqual(config.beta1, 0.85); XCTAssertEqual(config.beta2, 0.85); XCTAssertEqual(config.orthRegWeight, 0.5)
        XCTAssertEqual(config.lora.loraAlpha, 8)
        XCTAssertEqual(config.scaling, 8)
        XCTAssertEqual(config.lora.targetModules, .names(["q_proj", "v_proj"]))
        XCTAssertEqual(config.rankPattern?["model.layers.0.self_attn.v_proj.lora_E"], [true, true, true, true, false, true])
        XCTAssertEqual(config.rankPattern?["model.layers.1.self_attn.q_proj.lora_E"], [Bool](repeating: false, count: 6))
        XCTAssertEqual(config.rankPattern?.count, 4)
        XCTAssertNil(config.lora.extra["init_r"])  // AdaLoRA keys are interpreted, not carried as unknown
        // Writing it back gives PEFT's object: every key of the original file with the same value.
        let original = try JSONValue.parseObject(try Data(contentsOf: url), source: url.path)
        let written = config.jsonObject()
        XCTAssertEqual(Set(written.keys), Set(original.keys))
        for (key, value) in original where key != "peft_version" {
            XCTAssertEqual(written[key], value, key)
        }
        // Unknown fields from newer PEFT versions survive.
        var withFuture = original
        withFuture["some_future_field"] = .array([.string("x")])
        let reparsed = try AdaLoRAConfig(json: withFuture)
        XCTAssertEqual(reparsed.jsonObject()["some_future_field"], .array([.string("x")]))
        XCTAssertEqual(try AdaLoRAConfig(json: reparsed.jsonObject()), reparsed)
    }

    func testPhases() {
        let c = AdaLoRAConfig(initR: 6, targetR: 2, tinit: 2, tfinal: 2, totalStep: 8)
        XCTAssertEqual((0..<9).map { c.phase(at: $0) },
                       [.warmup, .warmup, .warmup, .reduction, .reduction, .reduction, .fixing, .final, .final])
    }
}
