// Crash safety of `lorakit train` under kill -9: the built executable trains a tiny Llama (peft/base_llama as a
// GGUF) with a checkpoint every step, so most of its time is spent writing checkpoints and adapters, and is killed
// with SIGKILL at random moments. After every kill the newest checkpoint on disk must load, and `--resume`
// (itself killed again, at random) must end in the same final adapter, byte for byte, as a run never interrupted.
// LORAKIT_KILL_COUNT sets the number of kills (default 50).
import Foundation
import XCTest
import Formats
import PEFT
import Training
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class CheckpointKillTests: XCTestCase {
    var directory: URL!
    var gguf: URL!
    var data: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "kill")
        gguf = directory.appendingPathComponent("tiny.gguf")
        let weights = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors")).tensors()
        try TinyLlamaGGUF.write(baseLlama: weights, to: gguf)
        data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let lines = (0..<12).map { "{\"prompt\": \"Hello world \($0) is\", \"completion\": \" the string and \($0 % 5)\"}" }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data.appendingPathComponent("train.jsonl"))
        try Data((lines.prefix(3).joined(separator: "\n") + "\n").utf8).write(to: data.appendingPathComponent("valid.jsonl"))
    }

    static var executable: URL? {
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent().appendingPathComponent("lorakit")) }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("lorakit"))
        for test in Bundle.allBundles where test.bundleURL.pathExtension == "xctest" {
            candidates.append(test.bundleURL.deletingLastPathComponent().appendingPathComponent("lorakit"))
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    let iterations = 12

    func trainArguments(out: URL, resume: Bool) -> [String] {
        ["train", "--model", gguf.path, "--data", data.path, "--out", out.path, "--iters", "\(iterations)", "--rank", "2",
         "--targets", "q_proj,v_proj", "--batch-size", "2", "--max-length", "24", "--learning-rate", "0.01", "--save-every", "1",
         "--keep-checkpoints", "2", "--eval-every", "4", "--seed", "5"] + (resume ? ["--resume", out.path] : ["--overwrite"])
    }

    /// Starts `lorakit` with output discarded.
    func start(_ arguments: [String]) throws -> Process {
        let process = Process()
        process.executableURL = try XCTUnwrap(Self.executable, "lorakit not found next to the test bundle")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        process.environment = ProcessInfo.processInfo.environment.merging(["LORAKIT_THREADS": "1", "SWIFT_BACKTRACE": "enable=no"]) { $1 }
        try process.run()
        return process
    }

    /// Hidden temporaries a killed writer left (checkpoint directories in the making, files before their rename).
    func temporaries(in out: URL) -> [String] {
        let fm = FileManager.default
        let top = (try? fm.contentsOfDirectory(atPath: out.path)) ?? []
        let checkpoints = (try? fm.contentsOfDirectory(atPath: out.appendingPathComponent("checkpoints").path)) ?? []
        return (top + checkpoints).filter { $0.hasPrefix(".") && ($0.contains(".tmp-") || $0.contains(".old-") || $0.contains(".removing-")) }
    }

    func testKilledTrainingResumesToTheSameAdapterBitForBit() throws {
        let kills = Int(ProcessInfo.processInfo.environment["LORAKIT_KILL_COUNT"] ?? "") ?? 50

        // The uninterrupted run: its adapter is the reference, its duration bounds the kill times.
        let reference = directory.appendingPathComponent("reference")
        let started = Date()
        let whole = try start(trainArguments(out: reference, resume: false))
        whole.waitUntilExit()
        XCTAssertEqual(whole.terminationStatus, 0)
        let duration = Date().timeIntervalSince(started)
        let expected = try Data(contentsOf: reference.appendingPathComponent(AdapterFiles.weightsName))
        let expectedConfig = try Data(contentsOf: reference.appendingPathComponent(AdapterFiles.configName))

        var rng = SystemRandomNumberGenerator()
        var killed = 0, midWrite = 0, chains = 0, resumedSteps: [Int] = []
        while killed < kills {
            // One chain: a fresh run, killed and resumed until a run is allowed to finish.
            chains += 1
            let out = directory.appendingPathComponent("chain-\(chains)")
            var resume = false
            while true {
                let process = try start(trainArguments(out: out, resume: resume))
                let finishing = killed >= kills
                if !finishing {
                    usleep(UInt32(Double.random(in: 0.05...1.0, using: &rng) * duration * 1_000_000))
                    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
                }
                process.waitUntilExit()
                if process.terminationReason == .uncaughtSignal {
                    killed += 1
                    if !temporaries(in: out).isEmpty { midWrite += 1 }
                } else {
                    XCTAssertEqual(process.terminationStatus, 0, "a run (resume \(resume)) failed on its own in \(out.path)")
                    if process.terminationStatus != 0 { return }
                }
                // Whatever was killed, the newest complete checkpoint loads: trainer state, adapter config and weights.
                let checkpoints = TrainerCheckpoint.list(in: out.appendingPathComponent("checkpoints"))
                if let latest = checkpoints.last {
                    let state = try TrainerCheckpoint.load(latest.directory)
                    XCTAssertEqual(state.step, latest.step)
                    _ = try LoRAConfig.load(from: latest.directory.appendingPathComponent(AdapterFiles.configName))
                    let weights = try SafeTensorsFile(contentsOf: latest.directory.appendingPathComponent(AdapterFiles.weightsName))
                    XCTAssertFalse(weights.names.isEmpty, "\(latest.directory.path)")
                    resumedSteps.append(latest.step)
                }
                resume = !checkpoints.isEmpty
                if process.terminationReason == .exit { break }
            }
            let adapter = try Data(contentsOf: out.appendingPathComponent(AdapterFiles.weightsName))
            XCTAssertEqual(adapter, expected, "chain \(chains): the resumed adapter differs from the uninterrupted run's")
            XCTAssertEqual(try Data(contentsOf: out.appendingPathComponent(AdapterFiles.configName)), expectedConfig)
            XCTAssertEqual(temporaries(in: out), [], "chain \(chains) left temporaries behind")
            XCTAssertLessThanOrEqual(TrainerCheckpoint.list(in: out.appendingPathComponent("checkpoints")).count, 2)
        }
        print("kill -9: \(killed) kills in \(chains) chains, \(midWrite) left a temporary (killed mid-write); "
              + "resumed from steps \(resumedSteps.sorted().first ?? 0)…\(resumedSteps.max() ?? 0); run \(String(format: "%.2f", duration)) s")
        XCTAssertGreaterThanOrEqual(killed, kills)
    }
}

extension CheckpointKillTests {
    /// A learning rate far too high drives the loss to NaN/Inf from the data itself (no injected fault): the CLI
    /// stops at that step, says which step and quantity, and the checkpoint it wrote before still loads.
    func testALossBlownUpByTheLearningRateStopsAtItsStep() throws {
        let out = directory.appendingPathComponent("blown-up")
        var arguments = trainArguments(out: out, resume: false)
        arguments[arguments.firstIndex(of: "--learning-rate")! + 1] = "1e300"
        arguments += ["--clip", "0", "--warmup", "2"]
        let errors = directory.appendingPathComponent("stderr.txt")
        FileManager.default.createFile(atPath: errors.path, contents: nil)
        let process = Process()
        process.executableURL = try XCTUnwrap(Self.executable, "lorakit not found next to the test bundle")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: errors)
        try process.run()
        process.waitUntilExit()
        let message = try String(contentsOf: errors, encoding: .utf8)
        XCTAssertNotEqual(process.terminationStatus, 0, message)
        XCTAssertTrue(message.contains("training stopped at step"), message)
        XCTAssertTrue(message.contains("nan") || message.contains("inf"), message)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent(AdapterFiles.weightsName).path),
                       "a final adapter was written from a diverged run")
        if let latest = TrainerCheckpoint.list(in: out.appendingPathComponent("checkpoints")).last {
            let weights = try SafeTensorsFile(contentsOf: latest.directory.appendingPathComponent(AdapterFiles.weightsName)).tensors()
            XCTAssertTrue(weights.values.allSatisfy { $0.nonFiniteReport() == nil }, "checkpoint \(latest.directory.path) holds NaN/Inf")
        }
    }
}
