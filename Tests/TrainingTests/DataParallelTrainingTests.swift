// `mpirun -np 2 lorakit train … --distributed mpi` on the tiny Llama fixture against one process with the same
// global batch: the same adapter (≤ 1e-5) and the same loss, gradient norm and valid loss at every step; only
// rank 0 writes; AdaLoRA ends with the same rank pattern; resume across rank counts; a rank killed mid-run ends
// the job and leaves a loadable checkpoint; without Open MPI, a typed error. Needs mpirun (openmpi-bin): skipped
// with a printed reason on a developer machine without it, a failure in CI (CI=true).
import Foundation
import XCTest
import Formats
import PEFT
import TensorCore
import Training
import TestSupport

final class DataParallelTrainingTests: XCTestCase {
    var directory: URL!
    var gguf: URL!
    var data: URL!

    override func setUpWithError() throws {
        directory = try temporaryDirectory(self, "dp")
        gguf = directory.appendingPathComponent("tiny.gguf")
        let weights = try SafeTensorsFile(contentsOf: Fixtures.url("peft/base_llama/model.safetensors")).tensors()
        try TinyLlamaGGUF.write(baseLlama: weights, to: gguf)
        data = directory.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        // Prompts and completions of different lengths: rows are padded, prompts are −100, so token weighting matters.
        let words = ["the", "string", "and", "Hello", "world", "is", "a", "of", "to", "in"]
        func examples(_ n: Int, salt: Int) throws -> String {
            try (0..<n).map { i -> String in
                let prompt = (0...(i * 7 + salt) % 5).map { words[($0 * 3 + i + salt) % words.count] }.joined(separator: " ")
                let completion = " " + (0...(i * 5 + salt) % 4).map { words[($0 + 2 * i + salt) % words.count] }.joined(separator: " ")
                return String(decoding: try JSONSerialization.data(withJSONObject: ["prompt": prompt, "completion": completion]), as: UTF8.self)
            }.joined(separator: "\n") + "\n"
        }
        try Data(try examples(13, salt: 1).utf8).write(to: data.appendingPathComponent("train.jsonl"))
        try Data(try examples(5, salt: 2).utf8).write(to: data.appendingPathComponent("valid.jsonl"))
    }

    // MARK: processes

    static var mpirun: URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        return path.split(separator: ":").map { URL(fileURLWithPath: String($0)).appendingPathComponent("mpirun") }
            .first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    func requireMPI() throws -> URL {
        if let mpirun = Self.mpirun { return mpirun }
        let reason = "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev, as scripts/setup.sh does)"
        if ProcessInfo.processInfo.environment["CI"] == "true" { XCTFail("\(reason): CI must run the data-parallel tests") }
        print("DataParallelTrainingTests skipped: \(reason)")
        throw XCTSkip(reason)
    }

    struct Run { let status: Int32; let stdout: String; let stderr: String }

    /// Starts `executable` with output to files; `finish` waits and reads them.
    final class Started {
        let process = Process()
        let out: URL, err: URL
        init(_ executable: URL, _ arguments: [String], environment: [String: String], in directory: URL) throws {
            out = directory.appendingPathComponent("stdout-\(UUID().uuidString)"); err = directory.appendingPathComponent("stderr-\(UUID().uuidString)")
            _ = FileManager.default.createFile(atPath: out.path, contents: nil); _ = FileManager.default.createFile(atPath: err.path, contents: nil)
            process.executableURL = executable
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.standardOutput = try FileHandle(forWritingTo: out)
            process.standardError = try FileHandle(forWritingTo: err)
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
        func finish(timeout: TimeInterval = 300) throws -> Run {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(20_000) }
            if process.isRunning { process.terminate(); process.waitUntilExit(); XCTFail("timed out after \(timeout) s") }
            process.waitUntilExit()
            return Run(status: process.terminationStatus, stdout: try String(contentsOf: out, encoding: .utf8),
                       stderr: try String(contentsOf: err, encoding: .utf8))
        }
    }

    func lorakitURL() throws -> URL { try XCTUnwrap(LoRAKitCLITests.executable, "lorakit not found next to the test bundle") }

    /// Two threads per machine in all: one per rank under mpirun, as the trainer would choose.
    func lorakit(_ arguments: [String], environment: [String: String] = [:]) throws -> Run {
        try Started(try lorakitURL(), arguments, environment: ["LORAKIT_THREADS": "1"].merging(environment) { $1 }, in: directory).finish()
    }

    func startMPI(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> Started {
        let mpirun = try requireMPI()
        let launcher = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", String(ranks)]
            + environment.keys.sorted().flatMap { ["-x", $0] }
        return try Started(mpirun, launcher + [try lorakitURL().path] + arguments,
                           environment: environment.merging(["OMPI_MCA_btl_vader_single_copy_mechanism": "none"]) { $1 }, in: directory)
    }

    func mpi(_ ranks: Int, _ arguments: [String]) throws -> Run { try startMPI(ranks, arguments).finish() }

    /// `lorakit train` on the fixture; `extra` adds options or replaces the defaults' values ("--iters", "8"),
    /// `removing` drops defaults.
    func trainArguments(out: String, extra: [String] = [], removing: Set<String> = []) -> [String] {
        var options: [(String, String?)] = [
            ("--model", gguf.path), ("--data", data.path), ("--out", directory.appendingPathComponent(out).path), ("--rank", "4"),
            ("--alpha", "8"), ("--dropout", "0.1"), ("--targets", "q_proj,v_proj"), ("--iters", "6"), ("--batch-size", "3"),
            ("--grad-accum", "2"), ("--learning-rate", "1e-2"), ("--warmup", "1"), ("--eval-every", "3"), ("--save-every", "3"), ("--seed", "5")]
        var i = 0
        while i < extra.count {
            let name = extra[i]
            let value: String? = i + 1 < extra.count && !extra[i + 1].hasPrefix("--") ? extra[i + 1] : nil
            if let k = options.firstIndex(where: { $0.0 == name }) { options[k].1 = value } else { options.append((name, value)) }
            i += value == nil ? 1 : 2
        }
        return ["train"] + options.filter { !removing.contains($0.0) }.flatMap { [$0.0] + ($0.1.map { [$0] } ?? []) }
    }

    // MARK: checks

    func adapterTensors(_ out: String) throws -> [String: Tensor] {
        try SafeTensorsFile(contentsOf: directory.appendingPathComponent(out).appendingPathComponent(AdapterFiles.weightsName)).tensors()
    }

    func assertSameAdapter(_ a: String, _ b: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let x = try adapterTensors(a), y = try adapterTensors(b)
        XCTAssertEqual(Set(x.keys), Set(y.keys), file: file, line: line)
        XCTAssertFalse(x.isEmpty, file: file, line: line)
        var worst: Float = 0
        for (name, t) in x {
            let u = try XCTUnwrap(y[name]); XCTAssertEqual(t.shape, u.shape, name, file: file, line: line)
            for (p, q) in zip(t.array, u.array) { worst = max(worst, abs(p - q)) }
        }
        XCTAssertLessThanOrEqual(worst, 1e-5, "largest adapter difference \(a) vs \(b)", file: file, line: line)
    }

    func metrics(_ out: String) throws -> [[String: Any]] {
        let text = try String(contentsOf: directory.appendingPathComponent(out).appendingPathComponent("metrics.jsonl"), encoding: .utf8)
        return try text.split(separator: "\n").map { try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
    }

    func column(_ records: [[String: Any]], split: String, _ key: String) -> [Double] {
        records.filter { $0["split"] as? String == split }.compactMap { ($0[key] as? NSNumber)?.doubleValue }
    }

    func assertClose(_ a: [Double], _ b: [Double], relative: Double, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        for (i, (x, y)) in zip(a, b).enumerated() {
            XCTAssertLessThanOrEqual(abs(x - y), relative * max(abs(x), abs(y), 1e-3), "\(what) at entry \(i): \(x) vs \(y)", file: file, line: line)
        }
    }

    func files(under out: String) -> [String] {
        let root = directory.appendingPathComponent(out)
        let e = FileManager.default.enumerator(atPath: root.path)
        return ((e?.allObjects as? [String]) ?? []).sorted()
    }

    // MARK: tests

    func testTwoRanksTrainTheSingleProcessAdapterAndLossCurve() throws {
        _ = try requireMPI()
        let single = try lorakit(trainArguments(out: "single"), environment: ["LORAKIT_THREADS": "2"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let dist = try mpi(2, trainArguments(out: "dist", extra: ["--distributed", "mpi"]))
        XCTAssertEqual(dist.status, 0, dist.stdout + dist.stderr)
        try assertSameAdapter("single", "dist")

        let a = try metrics("single"), b = try metrics("dist")
        XCTAssertEqual(column(a, split: "train", "step"), Array(1...6).map(Double.init))
        assertClose(column(a, split: "train", "loss"), column(b, split: "train", "loss"), relative: 1e-5, "train loss")
        assertClose(column(a, split: "train", "grad_norm"), column(b, split: "train", "grad_norm"), relative: 1e-4, "gradient norm")
        XCTAssertEqual(column(a, split: "train", "targets"), column(b, split: "train", "targets"))
        XCTAssertEqual(column(a, split: "train", "tokens"), column(b, split: "train", "tokens"))
        XCTAssertEqual(column(a, split: "valid", "step"), [0, 3, 6])
        assertClose(column(a, split: "valid", "loss"), column(b, split: "valid", "loss"), relative: 1e-5, "valid loss")
        XCTAssertEqual(column(b, split: "valid", "targets"), column(a, split: "valid", "targets"), "evaluation covers the whole split")
        // Communication per step: the adapter's floats (+ one presence flag per tensor) and the loss, not the model.
        let adapter = try adapterTensors("dist")
        let adapterFloats: Int = adapter.values.reduce(0) { $0 + $1.count }
        let expectedBytes = Double((adapterFloats + adapter.count) * 4 + 8)
        XCTAssertEqual(Set(column(b, split: "train", "allreduce_bytes")), [expectedBytes])
        XCTAssertEqual(Set(column(b, split: "train", "ranks")), [2])
        XCTAssertEqual(column(b, split: "train", "rank_wait_seconds").count, 6)
        XCTAssertTrue(column(b, split: "train", "allreduce_seconds").allSatisfy { $0 >= 0 && $0 < 60 })
        XCTAssertTrue(column(a, split: "train", "ranks").isEmpty, "one process logs no data-parallel fields")

        // Only rank 0 writes and prints: the same files as one process, one progress report.
        XCTAssertEqual(files(under: "dist"), files(under: "single"))
        XCTAssertEqual(dist.stdout.components(separatedBy: "Adapter saved to").count - 1, 1, dist.stdout)
        XCTAssertTrue(dist.stdout.contains("Data parallel: 2 ranks (Open MPI"), dist.stdout)

        // Resume across rank counts: one process's checkpoint after step 3, continued on two ranks.
        let resumed = try mpi(2, trainArguments(out: "resumed", extra: [
            "--distributed", "mpi", "--resume", directory.appendingPathComponent("single/checkpoints/step-000003").path]))
        XCTAssertEqual(resumed.status, 0, resumed.stdout + resumed.stderr)
        try assertSameAdapter("single", "resumed")
        assertClose(Array(column(a, split: "train", "loss").suffix(3)), column(try metrics("resumed"), split: "train", "loss"),
                    relative: 1e-5, "resumed train loss")
    }

    func testAdaLoRAOnTwoRanksKeepsTheSingleProcessRankPattern() throws {
        _ = try requireMPI()
        let adalora = ["--method", "adalora", "--init-rank", "4", "--target-rank", "2", "--iters", "8", "--tinit", "2", "--tfinal", "2",
                       "--delta-t", "1", "--save-every", "4", "--eval-every", "0"]
        let single = try lorakit(trainArguments(out: "single", extra: adalora, removing: ["--rank"]), environment: ["LORAKIT_THREADS": "2"])
        XCTAssertEqual(single.status, 0, single.stderr)
        let dist = try mpi(2, trainArguments(out: "dist", extra: adalora + ["--distributed", "mpi"], removing: ["--rank"]))
        XCTAssertEqual(dist.status, 0, dist.stdout + dist.stderr)
        try assertSameAdapter("single", "dist")
        let patterns = try ["single", "dist"].map {
            try String(contentsOf: directory.appendingPathComponent($0).appendingPathComponent(AdapterFiles.configName), encoding: .utf8)
        }
        XCTAssertTrue(patterns[0].contains("rank_pattern"), patterns[0])
        XCTAssertEqual(patterns[0], patterns[1], "the final rank pattern (from the all-reduced importance scores)")
        let a = try metrics("single"), b = try metrics("dist")
        assertClose(column(a, split: "train", "loss"), column(b, split: "train", "loss"), relative: 1e-5, "AdaLoRA train loss")
        XCTAssertEqual(column(a, split: "train", "budget"), column(b, split: "train", "budget"))
    }

    func testARankKilledMidRunEndsTheJobAndLeavesALoadableCheckpoint() throws {
        _ = try requireMPI()
        let tag = UUID().uuidString
        let run = try startMPI(2, trainArguments(out: "killed", extra: [
            "--distributed", "mpi", "--iters", "100000", "--schedule", "constant", "--warmup", "0", "--save-every", "2",
            "--keep-checkpoints", "3", "--eval-every", "0"]), environment: ["LORAKIT_TEST_TAG": tag])
        let checkpoints = directory.appendingPathComponent("killed/checkpoints")
        let deadline = Date().addingTimeInterval(120)
        while (TrainerCheckpoint.list(in: checkpoints).last?.step ?? 0) < 4 && run.process.isRunning && Date() < deadline { usleep(20_000) }
        let victim = try XCTUnwrap(Self.pid(ofRank: 1, tag: tag), "rank 1's process not found")
        XCTAssertEqual(kill(victim, SIGKILL), 0)
        let result = try run.finish(timeout: 60)
        XCTAssertNotEqual(result.status, 0)
        let output = result.stdout + result.stderr
        XCTAssertTrue(output.contains("lorakit rank 0: stopped by the MPI launcher") || output.contains("Error on rank 0 of 2"), output)
        XCTAssertTrue(output.localizedCaseInsensitiveContains("signal 9") || output.contains("killed"), output)

        // The newest checkpoint is complete and continues the run: resumed on one process it gives what one
        // process training that many steps gives.
        let last = try XCTUnwrap(TrainerCheckpoint.list(in: checkpoints).last)
        let state = try TrainerCheckpoint.load(last.directory)
        XCTAssertGreaterThanOrEqual(state.step, 4)
        let steps = String(state.step + 2)
        let common = ["--schedule", "constant", "--warmup", "0", "--save-every", "0", "--eval-every", "0", "--iters", steps]
        let resumed = try lorakit(trainArguments(out: "resumed", extra: common + ["--resume", last.directory.path]))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        let reference = try lorakit(trainArguments(out: "reference", extra: common))
        XCTAssertEqual(reference.status, 0, reference.stderr)
        try assertSameAdapter("reference", "resumed")
    }

    /// The pid of a process of this test's job (tagged through the environment) with OMPI_COMM_WORLD_RANK = rank.
    static func pid(ofRank rank: Int, tag: String) -> pid_t? {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for entry in entries {
            guard let pid = Int32(entry), let environ = FileManager.default.contents(atPath: "/proc/\(entry)/environ") else { continue }
            let variables = Set(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) })
            if variables.contains("LORAKIT_TEST_TAG=\(tag)") && variables.contains("OMPI_COMM_WORLD_RANK=\(rank)") { return pid }
        }
        return nil
    }

    func testLaunchMistakesAreTypedErrors() throws {
        // --distributed mpi without Open MPI (the loader pointed at a missing library): the library, why, and how to install.
        let missing = try lorakit(trainArguments(out: "nompi", extra: ["--distributed", "mpi"]),
                                  environment: ["LORAKIT_MPI_LIBRARY": directory.appendingPathComponent("missing/libmpi.so.40").path])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("missing/libmpi.so.40 could not be loaded"), missing.stderr)
        XCTAssertTrue(missing.stderr.contains("apt-get install libopenmpi-dev openmpi-bin"), missing.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: directory.appendingPathComponent("nompi").path), "nothing written")
        let unknown = try lorakit(trainArguments(out: "x", extra: ["--distributed", "nccl2"]))
        XCTAssertNotEqual(unknown.status, 0)
        XCTAssertTrue(unknown.stderr.contains("--distributed"), unknown.stderr)

        _ = try requireMPI()
        // Started by mpirun but without --distributed: each rank would train alone into the same files.
        let forgot = try mpi(2, trainArguments(out: "forgot"))
        XCTAssertNotEqual(forgot.status, 0)
        XCTAssertTrue(forgot.stderr.contains("--distributed is not set"), forgot.stderr)
        // A micro-batch smaller than the ranks.
        let small = try mpi(2, trainArguments(out: "small", extra: ["--distributed", "mpi", "--batch-size", "1"]))
        XCTAssertNotEqual(small.status, 0)
        XCTAssertTrue((small.stdout + small.stderr).contains("1 rows cannot be shared by 2 ranks"), small.stdout + small.stderr)
    }

    func testTheScalingBenchmarkReportsTheAdapterSizedReduction() throws {
        _ = try requireMPI()
        let run = try lorakit(["bench", "data-parallel", "--model", gguf.path, "--iters", "3", "--batch-size", "2", "--length", "128",
                               "--rank", "2", "--cores", "2", "--mpirun-args=--oversubscribe --bind-to none"],
                              environment: ["OMPI_MCA_btl_vader_single_copy_mechanism": "none"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any], run.stdout)
        let results = try XCTUnwrap(json["results"] as? [[String: Any]])
        XCTAssertEqual(results.compactMap { $0["config"] as? String }, ["1x1", "1x2", "2x1"])
        XCTAssertTrue(results.allSatisfy { ($0["tokens_per_second"] as? Double ?? 0) > 0 }, "\(results)")
        // r = 2 on q_proj [64 → 64] and v_proj [64 → 32] of 2 layers: A [2, 64] and B [out, 2] each, 8 tensors.
        let floats = 2 * ((2 * 64 + 64 * 2) + (2 * 64 + 32 * 2))
        XCTAssertEqual(json["allreduce_bytes_per_step"] as? Int, (floats + 8) * 4 + 8)
        XCTAssertLessThanOrEqual(try XCTUnwrap(json["max_loss_difference_vs_1x1"] as? Double), 1e-5)
    }
}
