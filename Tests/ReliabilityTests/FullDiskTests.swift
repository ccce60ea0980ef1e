// Writes that fail part-way (the disk fills up, the output folder is read-only) must fail with an error naming the
// file and leave the previous good file — or the previous adapter directory — in place, with no temporary behind.
// The disk is "filled" with RLIMIT_FSIZE (works for root too, unlike chmod); a write past it fails with EFBIG once
// SIGXFSZ is ignored. The read-only folder is sysfs, which refuses file creation even to root.
import Foundation
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class FullDiskTests: XCTestCase {
    /// Runs `body` with the process's file-size limit at `bytes` (files may not grow past it), then restores it.
    func withFileSizeLimit<R>(_ bytes: Int, _ body: () throws -> R) rethrows -> R {
        var saved = rlimit()
        getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
        let previousHandler = signal(SIGXFSZ, SIG_IGN)
        var limited = saved
        limited.rlim_cur = rlim_t(bytes)
        setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limited)
        defer {
            setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved)
            signal(SIGXFSZ, previousHandler)
        }
        return try body()
    }

    func hiddenFiles(_ directory: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasPrefix(".") }
    }

    func testAFullDiskLeavesTheOldSafetensorsFile() throws {
        let directory = try temporaryDirectory(self, "full-disk")
        let url = directory.appendingPathComponent("weights.safetensors")
        try SafeTensorsWriter.write([.float("w", Tensor(repeating: 1, shape: [4, 4]))], to: url)
        let good = try Data(contentsOf: url)
        let big = Tensor(repeating: 2, shape: [256, 256])  // 256 KiB, past the 64 KiB limit
        XCTAssertThrowsError(try withFileSizeLimit(65_536) { try SafeTensorsWriter.write([.float("w", big)], to: url) }) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(url.path), text)
            XCTAssertTrue(text.lowercased().contains("too large"), text)  // EFBIG: "File too large"
        }
        XCTAssertEqual(try Data(contentsOf: url), good, "the good file was replaced by a truncated one")
        XCTAssertEqual(try hiddenFiles(directory), [], "a temporary was left behind")
        try SafeTensorsWriter.write([.float("w", big)], to: url)  // with room again the write succeeds
        XCTAssertEqual(try SafeTensorsFile(contentsOf: url).tensor("w").shape, [256, 256])
    }

    func testAFullDiskLeavesTheOldAdapterDirectory() throws {
        let directory = try temporaryDirectory(self, "full-disk-adapter")
        var rng = RandomGenerator(seed: 11)
        let model = SmallAdaptableModel(rng: &rng)
        let config = LoRAConfig(r: 64, loraAlpha: 16, targetModules: .names(["q_proj"]))
        _ = try model.addLoRA(config, name: "default", rng: &rng)
        try AdapterFiles.saveLoRA(model, config: config, to: directory)
        let goodWeights = try Data(contentsOf: directory.appendingPathComponent(AdapterFiles.weightsName))
        let goodConfig = try Data(contentsOf: directory.appendingPathComponent(AdapterFiles.configName))
        // Train a little (new values) and save again onto a disk that cannot hold the weights.
        for (_, parameter) in model.adapterParameters("default") { parameter.value = Tensor(repeating: 0.25, shape: parameter.value.shape) }
        XCTAssertThrowsError(try withFileSizeLimit(8_192) { try AdapterFiles.saveLoRA(model, config: config, to: directory) }) { error in
            XCTAssertTrue("\(error)".contains(directory.path), "\(error)")
        }
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent(AdapterFiles.weightsName)), goodWeights)
        XCTAssertEqual(try Data(contentsOf: directory.appendingPathComponent(AdapterFiles.configName)), goodConfig)
        XCTAssertEqual(try hiddenFiles(directory), [])
    }

    func testAReadOnlyOutputFolderIsAClearError() throws {
        let readOnly = URL(fileURLWithPath: "/sys/kernel")
        let probe = readOnly.appendingPathComponent("lorakit-probe")
        if FileManager.default.createFile(atPath: probe.path, contents: Data()) {
            try? FileManager.default.removeItem(at: probe)
            throw XCTSkip("/sys/kernel is writable here; no read-only folder to test against")
        }
        let url = readOnly.appendingPathComponent("weights.safetensors")
        XCTAssertThrowsError(try SafeTensorsWriter.write([.float("w", Tensor(repeating: 1, shape: [2]))], to: url)) { error in
            XCTAssertTrue("\(error)".contains(url.path), "\(error)")
        }
    }
}

/// Two rectangular projections with Llama names, enough for an adapter of some size.
final class SmallAdaptableModel: AdaptableModel {
    let layers: [AdaptedLinear]
    init(rng: inout RandomGenerator) {
        layers = [AdaptedLinear(path: "model.layers.0.self_attn.q_proj", weight: Variable(rng.normal([64, 64], std: 0.1))),
                  AdaptedLinear(path: "model.layers.0.self_attn.v_proj", weight: Variable(rng.normal([64, 64], std: 0.1)))]
    }
    var adaptedLinears: [AdaptedLinear] { layers }
}
