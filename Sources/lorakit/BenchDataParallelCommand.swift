import ArgumentParser
import Foundation
import Training

/// `lorakit bench data-parallel`: scaling of `lorakit train --distributed mpi` on one machine, as JSON.
/// Three runs of the same training (same global batch, same steps), each a child process: one process with one
/// thread, one process with every core's thread, and `mpirun -np R` ranks with cores / R threads each (ranks ×
/// threads = cores). Step times come from each run's metrics.jsonl (the first step is warm-up and left out); the
/// data-parallel run's metrics also give the bytes each rank all-reduced per step and the seconds it spent there.
/// With --repeats the three runs are repeated in turn and each configuration's fastest run is kept (on a shared
/// machine, the run least slowed by others).
struct BenchDataParallel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data-parallel",
        abstract: "Data-parallel scaling on local ranks: tokens/s of 1 process × 1 thread, 1 × cores, and R ranks × cores/R threads; bytes all-reduced per step.",
        discussion: """
            Needs Open MPI (mpirun). Trains LoRA on the date-normalisation task with packed rows of --length tokens, \
            --batch-size rows per step; the runs train the same global batch, so their losses agree (reported). \
            As root, mpirun is given --allow-run-as-root; --mpirun-args="…" adds launcher options (e.g. --mpirun-args="--bind-to none").
            """)

    @Option(help: "A .gguf file or a Hugging Face model directory.") var model = "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    @Option(help: "Ranks of the data-parallel run.") var ranks = 2
    @Option(help: "Cores to share (default: all of this machine's).") var cores = ProcessInfo.processInfo.activeProcessorCount
    @Option(help: "Optimizer steps per run (the first is not timed).") var iters = 5
    @Option(help: "Rows per step (the global micro-batch).") var batchSize = 4
    @Option(help: "Tokens per packed row.") var length = 256
    @Option(help: "LoRA rank.") var rank = 8
    @Option(help: "Modules to adapt.") var targets = "q_proj,v_proj"
    @Option(help: "The mpirun executable.") var mpirun = "mpirun"
    @Option(help: "Extra mpirun options, space-separated (--mpirun-args=\"--bind-to none\").") var mpirunArgs = ""
    @Option(help: "Rounds of the three runs; each configuration's fastest round is reported.") var repeats = 1
    @Option(help: "Scratch directory (default: a temporary one, removed afterwards).") var work: String?

    func validate() throws {
        guard ranks >= 2, cores >= 1, iters >= 2, batchSize >= ranks, length >= 16, rank >= 1, repeats >= 1 else {
            throw ValidationError("need --ranks ≥ 2, --iters ≥ 2, --batch-size ≥ --ranks, --length ≥ 16, --repeats ≥ 1")
        }
    }

    struct Measured {
        let stepSeconds: Double; let tokensPerStep: Double; let losses: [Double]; let allreduceBytes: Int?; let allreduceSeconds: Double?
        var waitSeconds: Double? = nil
        /// CPU seconds (user + system) of the whole run, every rank together (loading included).
        var cpuSeconds: Double = 0
    }

    func run() throws {
        guard let executable = Bundle.main.executableURL else { throw ValidationError("cannot locate the lorakit executable") }
        let scratch = URL(fileURLWithPath: work ?? NSTemporaryDirectory()).appendingPathComponent("lorakit-bench-dp-\(UUID().uuidString)")
        defer { if work == nil { try? FileManager.default.removeItem(at: scratch) } }
        let data = scratch.appendingPathComponent("data")
        _ = try DateNormalizationTask(seed: 3).write(to: data, train: 400, valid: 0, test: 0)
        try? FileManager.default.removeItem(at: data.appendingPathComponent("valid.jsonl"))
        try? FileManager.default.removeItem(at: data.appendingPathComponent("test.jsonl"))
        let train = ["train", "--model", model, "--data", data.path, "--iters", String(iters), "--batch-size", String(batchSize),
                     "--packing", "--max-length", String(length), "--rank", String(rank), "--alpha", String(2 * rank), "--targets", targets,
                     "--save-every", "0", "--eval-every", "0", "--schedule", "constant", "--learning-rate", "1e-4"]
        func measure(_ name: String, threads: Int, launcher: [String]?) throws -> Measured {
            let out = scratch.appendingPathComponent(name)
            let process = Process()
            var arguments = train + ["--out", out.path]
            if let launcher {
                process.executableURL = URL(fileURLWithPath: try resolve(mpirun))
                arguments = launcher + [executable.path] + arguments + ["--distributed", "mpi"]
            } else {
                process.executableURL = executable
            }
            process.arguments = arguments
            process.environment = ProcessInfo.processInfo.environment.merging(["LORAKIT_THREADS": String(threads)]) { $1 }
            let log = scratch.appendingPathComponent("\(name).log")
            _ = FileManager.default.createFile(atPath: log.path, contents: nil)
            let handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle; process.standardError = handle
            FileHandle.standardError.write(Data("bench data-parallel: \(name) …\n".utf8))
            let cpuBefore = childrenCPUSeconds()
            try process.run()
            process.waitUntilExit()
            let cpu = childrenCPUSeconds() - cpuBefore
            guard process.terminationStatus == 0 else {
                let tail = (try? String(contentsOf: log, encoding: .utf8)).map { String($0.suffix(2000)) } ?? ""
                throw ValidationError("run \(name) failed (exit status \(process.terminationStatus)):\n\(tail)")
            }
            let text = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8)
            let steps = text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
                .filter { $0["split"] as? String == "train" }
            let elapsed = steps.compactMap { ($0["elapsed_seconds"] as? NSNumber)?.doubleValue }
            let durations = zip(elapsed.dropFirst(), elapsed).map { $0 - $1 }  // step 1 (warm-up) left out
            let tokens = steps.dropFirst().compactMap { ($0["tokens"] as? NSNumber)?.doubleValue }
            let bytes = steps.compactMap { ($0["allreduce_bytes"] as? NSNumber)?.intValue }.last
            let seconds = steps.dropFirst().compactMap { ($0["allreduce_seconds"] as? NSNumber)?.doubleValue }
            let waits = steps.dropFirst().compactMap { ($0["rank_wait_seconds"] as? NSNumber)?.doubleValue }
            return Measured(stepSeconds: median(durations), tokensPerStep: tokens.reduce(0, +) / Double(max(tokens.count, 1)),
                            losses: steps.compactMap { ($0["loss"] as? NSNumber)?.doubleValue }, allreduceBytes: bytes,
                            allreduceSeconds: seconds.isEmpty ? nil : median(seconds),
                            waitSeconds: waits.isEmpty ? nil : median(waits), cpuSeconds: cpu)
        }
        let threadsPerRank = max(1, cores / ranks)
        var launcher = ["-np", String(ranks)] + mpirunArgs.split(separator: " ").map(String.init)
        if getuid() == 0 { launcher.insert("--allow-run-as-root", at: 0) }
        var rounds: [(Measured, Measured, Measured)] = []
        for round in 0..<repeats {
            rounds.append((try measure("1x1-\(round)", threads: 1, launcher: nil),
                           try measure("1x\(cores)-\(round)", threads: cores, launcher: nil),
                           try measure("\(ranks)x\(threadsPerRank)-\(round)", threads: threadsPerRank, launcher: launcher)))
        }
        func fastest(_ runs: [Measured]) -> Measured { runs.min { $0.stepSeconds < $1.stepSeconds }! }
        let oneByOne = fastest(rounds.map(\.0)), oneByAll = fastest(rounds.map(\.1)), parallel = fastest(rounds.map(\.2))
        let allSteps = rounds.map { [$0.0.stepSeconds, $0.1.stepSeconds, $0.2.stepSeconds].map { (($0 * 1000).rounded() / 1000) } }
        func tps(_ m: Measured) -> Double { m.tokensPerStep / m.stepSeconds }
        func r3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
        let adapter = scratch.appendingPathComponent("1x1-0/adapter_model.safetensors")
        let modelBytes = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? nil
        let lossGap = zip(oneByOne.losses, parallel.losses).map { abs($0 - $1) }.max() ?? .nan
        func row(_ name: String, _ m: Measured, ranks: Int, threads: Int) -> [String: Any] {
            var r: [String: Any] = ["config": name, "ranks": ranks, "threads_per_rank": threads, "step_seconds": r3(m.stepSeconds),
                                    "tokens_per_second": (tps(m) * 10).rounded() / 10, "cpu_seconds_whole_run": (m.cpuSeconds * 10).rounded() / 10]
            if let b = m.allreduceBytes { r["allreduce_bytes_per_step"] = b }
            if let s = m.allreduceSeconds { r["allreduce_seconds_per_step"] = (s * 1e5).rounded() / 1e5 }
            if let w = m.waitSeconds { r["rank_wait_seconds_per_step"] = (w * 1e3).rounded() / 1e3 }
            return r
        }
        var json: [String: Any] = [
            "benchmark": "data-parallel", "model": model, "cores": cores, "rows_per_step": batchSize, "length": length, "rank": rank,
            "targets": targets, "timed_steps": iters - 1, "tokens_per_step": oneByOne.tokensPerStep,
            "results": [row("1x1", oneByOne, ranks: 1, threads: 1), row("1x\(cores)", oneByAll, ranks: 1, threads: cores),
                        row("\(ranks)x\(threadsPerRank)", parallel, ranks: ranks, threads: threadsPerRank)],
            "speedup_vs_1x1": r3(tps(parallel) / tps(oneByOne)),
            "scaling_efficiency": r3(tps(parallel) / tps(oneByOne) / Double(ranks)),
            "speedup_vs_1x\(cores)": r3(tps(parallel) / tps(oneByAll)),
            "threads_speedup_1x\(cores)_vs_1x1": r3(tps(oneByAll) / tps(oneByOne)),
            "max_loss_difference_vs_1x1": lossGap,
            "cpu_ratio_1x1_over_parallel": r3(oneByOne.cpuSeconds / parallel.cpuSeconds), "repeats": repeats, "step_seconds_per_round": allSteps,
            "load_average_after": loadAverage()]
        if let b = parallel.allreduceBytes { json["allreduce_bytes_per_step"] = b }
        if let size = try? FileManager.default.attributesOfItem(atPath: adapter.path)[.size] as? Int { json["adapter_file_bytes"] = size }
        if let modelBytes { json["model_file_bytes"] = modelBytes }
        if let s = parallel.allreduceSeconds { json["allreduce_fraction_of_step"] = r3(s / parallel.stepSeconds) }
        let out = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: out, as: UTF8.self))
    }

    /// User + system CPU seconds of every waited-for descendant so far (mpirun waits for its ranks, so they count).
    func childrenCPUSeconds() -> Double {
        var usage = rusage()
        #if os(Linux)
        getrusage(RUSAGE_CHILDREN.rawValue, &usage)
        #else
        getrusage(RUSAGE_CHILDREN, &usage)
        #endif
        func seconds(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
        return seconds(usage.ru_utime) + seconds(usage.ru_stime)
    }

    /// The 1-minute load average (how busy the machine was), from /proc/loadavg where there is one.
    func loadAverage() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return -1 }
        return Double(text.split(separator: " ").first ?? "") ?? -1
    }

    /// `name` if it is a path, else the first match on PATH.
    func resolve(_ name: String) throws -> String {
        if name.contains("/") { return name }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
            let path = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw ValidationError("\(name) not found on PATH: install Open MPI (apt-get install openmpi-bin libopenmpi-dev)")
    }
}
