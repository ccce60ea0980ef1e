import Foundation

/// Runs llama.cpp's `llama-bench` on a GGUF file (pp = prompt processing, tg = text generation) and reads its JSON,
/// so `lorakit bench generate --llama-bench PATH` can report LoRAKit's speeds next to llama.cpp's as ratios.
struct LlamaBenchRunner {
    let executable: String

    struct Result {
        let prefillTokensPerSecond: Double
        let decodeTokensPerSecond: Double
        let build: String
        let commandLine: String
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// `llama-bench -m MODEL -p P -n N -t T -r R -o json`; one pp and one tg measurement.
    func run(model: String, promptTokens: Int, newTokens: Int, threads: Int, repeats: Int) throws -> Result {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw Failure(description: "--llama-bench \(executable): not an executable (build it with scripts/interop/build-llama-cpp.sh)")
        }
        let arguments = ["-m", model, "-p", "\(promptTokens)", "-n", "\(newTokens)", "-t", "\(threads)", "-r", "\(repeats)", "-o", "json"]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let tail = String(decoding: errors.suffix(600), as: UTF8.self)
            throw Failure(description: "llama-bench exited with status \(process.terminationStatus): \(tail)")
        }
        guard let rows = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw Failure(description: "llama-bench printed no JSON array")
        }
        func speed(_ pick: ([String: Any]) -> Bool, _ what: String) throws -> Double {
            guard let row = rows.first(where: pick), let ts = row["avg_ts"] as? Double else {
                throw Failure(description: "llama-bench JSON has no \(what) row with avg_ts")
            }
            return ts
        }
        let pp = try speed({ ($0["n_prompt"] as? Int ?? 0) > 0 && ($0["n_gen"] as? Int ?? 0) == 0 }, "prompt (pp)")
        let tg = try speed({ ($0["n_gen"] as? Int ?? 0) > 0 && ($0["n_prompt"] as? Int ?? 0) == 0 }, "generation (tg)")
        let build = (rows.first?["build_commit"] as? String).map { "\($0) (\(rows.first?["build_number"] ?? "?"))" } ?? "unknown"
        return Result(prefillTokensPerSecond: pp, decodeTokensPerSecond: tg, build: build,
                      commandLine: ([executable] + arguments).joined(separator: " "))
    }
}
