import Foundation
import PEFT
import Training
import XCTest

final class TrainingRunOptionsTests: XCTestCase {
    var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-options-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: directory) }

    func file(_ name: String, _ text: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    func testYAMLConfigWithFlagNamesAndPEFTSpellings() throws {
        let url = try file("run.yaml", """
            model: models/smollm.gguf
            data: data/dates
            r: 16                 # PEFT spelling of rank
            lora_alpha: 32
            lora-dropout: 0.1
            target_modules: [q_proj, k_proj, v_proj]
            iters: 300
            batch-size: 8
            grad_accum: 2
            max_seq_length: 256
            learning_rate: 1e-4   # YAML 1.1 reads this as a string; it is still a number here
            warmup: 10
            schedule: linear
            clip: 0
            eval_every: 50
            save-every: 100
            seed: 3
            train_on_prompt: true
            packing: true
            gradient_checkpointing: true   # Hugging Face's name for recompute_activations
            out: runs/dates
            """)
        let options = try TrainingRunOptions.load(configFile: url)
        XCTAssertEqual(options.rank, 16); XCTAssertEqual(options.alpha, 32); XCTAssertEqual(options.dropout, 0.1)
        XCTAssertEqual(options.targets, "q_proj,k_proj,v_proj"); XCTAssertEqual(options.learningRate, 1e-4)
        let plan = try options.resolved()
        XCTAssertEqual(plan.modelPath, "models/smollm.gguf")
        XCTAssertEqual(plan.lora.r, 16); XCTAssertEqual(plan.lora.loraAlpha, 32); XCTAssertEqual(plan.lora.loraDropout, 0.1)
        XCTAssertEqual(plan.lora.targetModules, .names(["q_proj", "k_proj", "v_proj"]))
        XCTAssertEqual(plan.encoding, EncodingOptions(maxLength: 256, trainOnPrompt: true))
        let t = plan.trainer
        XCTAssertEqual([t.iterations, t.batchSize, t.gradientAccumulation, t.warmupSteps, t.evalEvery, t.saveEvery], [300, 8, 2, 10, 50, 100])
        XCTAssertEqual(t.learningRate, 1e-4); XCTAssertEqual(t.decay, .linear); XCTAssertNil(t.clipNorm)
        XCTAssertEqual(t.seed, 3); XCTAssertEqual(t.packLength, 256); XCTAssertTrue(t.recomputeActivations)
        XCTAssertEqual(t.outputDirectory.path, URL(fileURLWithPath: "runs/dates").path)
    }

    func testJSONConfigAndCommandLineOverride() throws {
        let url = try file("run.json", #"{"model": "m.gguf", "data": "d", "learning-rate": 0.001, "targets": "all-linear", "iters": 50, "packing": false}"#)
        var flags = TrainingRunOptions()
        flags.iters = 80; flags.rank = 4
        let merged = flags.overriding(try TrainingRunOptions.load(configFile: url))
        let plan = try merged.resolved()
        XCTAssertEqual(plan.trainer.iterations, 80, "the flag wins over the file")
        XCTAssertEqual(plan.trainer.learningRate, 1e-3, "the file fills what the flags leave out")
        XCTAssertEqual(plan.lora.r, 4); XCTAssertEqual(plan.lora.targetModules, .allLinear)
        XCTAssertNil(plan.trainer.packLength)
        // Defaults when nothing is said.
        var minimal = TrainingRunOptions()
        minimal.model = "m"; minimal.data = "d"
        let d = try minimal.resolved()
        XCTAssertEqual(d.lora.r, 8); XCTAssertEqual(d.lora.loraAlpha, 16); XCTAssertEqual(d.lora.loraDropout, 0.05)
        XCTAssertEqual(d.lora.targetModules, .names(["q_proj", "v_proj"]))
        XCTAssertEqual(d.trainer.clipNorm, 1.0); XCTAssertEqual(d.trainer.decay, .cosine); XCTAssertEqual(d.encoding.maxLength, 2048)
    }

    func testConfigErrorsNameFileAndKey() throws {
        func assertFails(_ name: String, _ text: String, key: String?, contains: String, line: UInt = #line) throws {
            let url = try file(name, text)
            XCTAssertThrowsError(try TrainingRunOptions.load(configFile: url), line: line) { error in
                guard case let .configFile(path, k, reason)? = error as? TrainingError else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(path, url.path, line: line); XCTAssertEqual(k, key, line: line)
                XCTAssertTrue(reason.contains(contains), reason, line: line)
                XCTAssertTrue("\(error)".hasPrefix(url.path), line: line)
            }
        }
        try assertFails("a.yaml", "learning_rat: 1e-4\n", key: "learning_rat", contains: "unknown option (known: model, data")
        try assertFails("b.yaml", "rank: eight\n", key: "rank", contains: "must be a whole number, got \"eight\"")
        try assertFails("c.yaml", "rank: 8.5\n", key: "rank", contains: "got 8.5")
        try assertFails("d.yaml", "targets: [q_proj, 3]\n", key: "targets", contains: "a list of module names")
        try assertFails("f.yaml", "- rank\n- 8\n", key: nil, contains: "must be a mapping")
        try assertFails("g.yaml", "rank: [8\n", key: nil, contains: "not valid YAML")
        try assertFails("h.json", "{\"rank\": 8,}", key: nil, contains: "invalid JSON")
        try assertFails("i.yaml", "", key: nil, contains: "empty")
        try assertFails("j.yaml", "packing: maybe\n", key: "packing", contains: "true or false")
        XCTAssertThrowsError(try TrainingRunOptions.load(configFile: directory.appendingPathComponent("missing.yaml"))) {
            XCTAssertTrue("\($0)".contains("no such file"))
        }
    }

    func testDuplicateSpellingsOfOneOption() throws {
        let url = try file("dup.yaml", "r: 8\nrank: 4\n")
        XCTAssertThrowsError(try TrainingRunOptions.load(configFile: url)) { error in
            guard case let .configFile(_, key, reason)? = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertTrue(["r", "rank"].contains(key ?? ""))
            XCTAssertTrue(reason.hasPrefix("sets the same option as"), reason)
        }
    }

    func testResolvedRejectsMissingAndBadValues() {
        func assertInvalid(_ edit: (inout TrainingRunOptions) -> Void, _ name: String, line: UInt = #line) {
            var o = TrainingRunOptions()
            o.model = "m"; o.data = "d"
            edit(&o)
            XCTAssertThrowsError(try o.resolved(), line: line) { error in
                guard case .invalidOption(let n, _)? = error as? TrainingError else { return XCTFail("\(error)", line: line) }
                XCTAssertEqual(n, name, line: line)
            }
        }
        assertInvalid({ $0.model = nil }, "--model")
        assertInvalid({ $0.data = nil }, "--data")
        assertInvalid({ $0.schedule = "exponential" }, "--schedule")
        assertInvalid({ $0.chatFormat = "alpaca" }, "--chat-format")
        assertInvalid({ $0.rank = 0 }, "LoRA")
        assertInvalid({ $0.dropout = 1.5 }, "LoRA")
        assertInvalid({ $0.targets = " , " }, "--targets")
        assertInvalid({ $0.iters = 0 }, "iterations")
        assertInvalid({ $0.batchSize = -1 }, "batch size")
        assertInvalid({ $0.clip = -1 }, "clip")
        assertInvalid({ $0.learningRate = -1 }, "learning rate")
        assertInvalid({ $0.seed = -3 }, "--seed")
    }
}
