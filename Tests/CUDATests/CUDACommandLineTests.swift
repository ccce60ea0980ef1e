// The built `lorakit` executable: `--device` parsing and the typed "no CUDA driver found" error on a machine
// without a driver, and `lorakit cuda compile` filling a cache directory that then serves as a prebuilt bundle.
import CUDA
import Foundation
import XCTest

final class CUDACommandLineTests: XCTestCase {
    static var executable: URL? {
        var candidates: [URL] = []
        if let exe = Bundle.main.executableURL { candidates.append(exe.deletingLastPathComponent().appendingPathComponent("lorakit")) }
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("lorakit"))
        for test in Bundle.allBundles where test.bundleURL.pathExtension == "xctest" {
            candidates.append(test.bundleURL.deletingLastPathComponent().appendingPathComponent("lorakit"))
        }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }
    }

    func lorakit(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Self.run(arguments, environment: environment)
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, stdout: String, stderr: String) {
        let exe = try XCTUnwrap(executable, "lorakit not found next to the test bundle")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-cuda-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil); FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = exe
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    var hasDriver: Bool { if case .success = CUDADeviceProbe.firstDevice() { return true } else { return false } }

    func testDeviceCUDAWithoutDriverIsATypedErrorOnEveryCommand() throws {
        try XCTSkipIf(hasDriver, "this machine has a CUDA device")
        for command in [["train", "--model", "/nonexistent.gguf"], ["eval", "--model", "/nonexistent.gguf", "--data", "/nonexistent.jsonl"],
                        ["generate", "--model", "/nonexistent.gguf", "--prompt", "hi"], ["bench", "train"], ["bench", "generate", "--model", "/nonexistent.gguf"], ["chat", "--model", "/nonexistent.gguf"]] {
            let run = try lorakit(command + ["--device", "cuda"], environment: ["LORAKIT_CUDA_PATH": "/nonexistent/libcuda.so.1"])
            XCTAssertNotEqual(run.status, 0, command.joined(separator: " "))
            XCTAssertTrue(run.stderr.contains("no CUDA driver found: "), "\(command): \(run.stderr)")
            XCTAssertTrue(run.stderr.contains("/nonexistent/libcuda.so.1") && run.stderr.contains("libcuda.so.1"), run.stderr)
        }
    }

    func testUnknownDeviceIsRejected() throws {
        let run = try lorakit(["train", "--device", "gpu"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertTrue(run.stderr.contains("unknown device 'gpu'"), run.stderr)
    }

    func testAutoWithoutDriverRunsOnTheCPUPath() throws {
        try XCTSkipIf(hasDriver, "this machine has a CUDA device")
        // Reaches the model loader (so the device step passed): the error is about the missing model file.
        let run = try lorakit(["generate", "--model", "/nonexistent.gguf", "--prompt", "hi", "--device", "auto"])
        XCTAssertNotEqual(run.status, 0)
        XCTAssertFalse(run.stderr.contains("CUDA"), run.stderr)
        XCTAssertTrue(run.stderr.contains("/nonexistent.gguf"), run.stderr)
    }

    func testInfoReportsWhatWasTried() throws {
        try XCTSkipIf(hasDriver, "this machine has a CUDA device")
        let run = try lorakit(["cuda", "info"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        XCTAssertTrue((json["device_error"] as? String)?.hasPrefix("no CUDA driver found: ") ?? false, run.stdout)
    }
}
