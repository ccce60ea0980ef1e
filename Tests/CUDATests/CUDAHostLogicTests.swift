// Host-side logic of the CUDA backend, on any machine: device choice, the typed no-driver error, launch
// geometry, the row-major → cuBLAS mapping and the kernel binary cache.
import CUDA
import Foundation
import XCTest

final class DeviceSelectionTests: XCTestCase {
    func testParsing() throws {
        XCTAssertEqual(try DeviceChoice(parsing: "cpu"), .cpu)
        XCTAssertEqual(try DeviceChoice(parsing: "CUDA"), .cuda)
        XCTAssertEqual(try DeviceChoice(parsing: "auto"), .auto)
        XCTAssertThrowsError(try DeviceChoice(parsing: "gpu")) { XCTAssertEqual($0 as? CUDAError, .unknownDevice("gpu")) }
    }

    let missing: () -> Result<CUDADeviceInfo, CUDAError> = { .failure(.noDriver(tried: ["libcuda.so.1: cannot open shared object file"])) }
    let h200 = CUDADeviceInfo(ordinal: 0, name: "NVIDIA H200", computeCapability: 90, multiprocessors: 132, memoryBytes: 141 << 30,
                              maxSharedBytesPerBlock: 232_448, driverVersion: 12040, driverPath: "libcuda.so.1")

    func testAutoFallsBackToCPUWithoutDriverAndPicksCUDAWithOne() throws {
        XCTAssertEqual(try DeviceResolver.resolve(.auto, probe: missing), .cpu)
        XCTAssertEqual(try DeviceResolver.resolve(.auto, probe: { .success(self.h200) }), .cuda(h200))
        XCTAssertEqual(try DeviceResolver.resolve(.cpu, probe: { .success(self.h200) }), .cpu)
    }

    func testCUDAWithoutDriverIsTypedErrorListingAttempts() {
        XCTAssertThrowsError(try DeviceResolver.resolve(.cuda, probe: missing)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("no CUDA driver found: "), text)
            XCTAssertTrue(text.contains("libcuda.so.1"), text)
        }
    }

    func testRealDriverSearchOnThisMachine() {
        // On a machine without a driver the real probe fails with every candidate listed; with one it succeeds.
        switch CUDADeviceProbe.firstDevice() {
        case .success(let info): XCTAssertGreaterThan(info.computeCapability, 0)
        case .failure(let error):
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("no CUDA driver found: ") || text.hasPrefix("no CUDA device"), text)
            if case .noDriver(let tried) = error { XCTAssertEqual(tried.count, Set(CUDALibrarySearch.driverCandidates()).count, text) }
        }
    }

    func testOverridePathsComeFirst() throws {
        let list = CUDALibrarySearch.driverCandidates(environment: ["LORAKIT_CUDA_PATH": "/opt/x/libcuda.so.1"])
        XCTAssertEqual(list.first, "/opt/x/libcuda.so.1")
        let nvrtc = CUDALibrarySearch.nvrtcCandidates(environment: ["LORAKIT_NVRTC_PATH": "/opt/y/libnvrtc.so.12"])
        XCTAssertEqual(nvrtc.first, "/opt/y/libnvrtc.so.12")
        let cublas = CUDALibrarySearch.cublasCandidates(environment: ["LORAKIT_CUBLAS_PATH": "/opt/z/libcublas.so.12"])
        XCTAssertEqual(cublas.first, "/opt/z/libcublas.so.12")
    }
}

final class LaunchGeometryTests: XCTestCase {
    func testElementwiseAndRows() throws {
        XCTAssertEqual(LaunchGeometry.elementwise(count: 1000, multiprocessors: 132).grid.x, 4)
        XCTAssertEqual(LaunchGeometry.elementwise(count: 1 << 30, multiprocessors: 132).grid.x, 132 * 8)
        XCTAssertEqual(try LaunchGeometry.rows(10, dim: 576).block, 160)     // 576/4 = 144 → 160 (multiple of 32)
        XCTAssertEqual(try LaunchGeometry.rows(10, dim: 49_152).block, 1024)
        XCTAssertEqual(try LaunchGeometry.rows(10, dim: 8).block, 32)
        XCTAssertThrowsError(try LaunchGeometry.rows(10, dim: 0))
    }

    func testGEMMTiles() throws {
        let g = try LaunchGeometry.gemm(m: 1000, n: 130, batch: 3)
        XCTAssertEqual(g.grid.x, 3); XCTAssertEqual(g.grid.y, 16); XCTAssertEqual(g.grid.z, 3)
        XCTAssertThrowsError(try LaunchGeometry.gemm(m: 0, n: 1, batch: 1))
    }

    func testAttentionGeometryAndValidation() throws {
        // SmolLM2-135M: 9 query heads, 3 kv heads, head dim 64; batch 16 × 512.
        let s = DeviceAttentionShape(batch: 16, queryHeads: 9, kvHeads: 3, queryLength: 512, keyLength: 512, headDim: 64, causal: true)
        try s.validate()
        XCTAssertEqual(s.forward.grid.x, 32); XCTAssertEqual(s.forward.grid.y, 9); XCTAssertEqual(s.forward.grid.z, 16)
        XCTAssertEqual(s.forward.sharedBytes, 4 * (16 * 64 + 32 * 65 + 32 * 64 + 128))
        XCTAssertEqual(s.backwardKeyValue.grid.y, 3)
        // D = 128 backward needs more than the 48 KiB default: opt-in size, still within Hopper's 227 KiB.
        let big = DeviceAttentionShape(batch: 1, queryHeads: 32, kvHeads: 8, queryLength: 100, keyLength: 100, headDim: 128, causal: true)
        XCTAssertGreaterThan(big.backwardKeyValue.sharedBytes, 48 * 1024)
        try big.validate()
        XCTAssertThrowsError(try big.validate(maxSharedBytes: 48 * 1024))
        var bad = s; bad.headDim = 160
        XCTAssertThrowsError(try bad.validate())
        bad = s; bad.kvHeads = 4
        XCTAssertThrowsError(try bad.validate())
        bad = s; bad.keyLength = 100
        XCTAssertThrowsError(try bad.validate())
    }

    func testDeviceAllocationSizeClasses() {
        XCTAssertEqual(CUDAContext.sizeClass(1), 512)
        XCTAssertEqual(CUDAContext.sizeClass(513), 1024)
        XCTAssertEqual(CUDAContext.sizeClass(1 << 20), 1 << 20)
        XCTAssertEqual(CUDAContext.sizeClass((1 << 20) + 1), (1 << 20) + (1 << 17))   // ≤ 12.5 % slack
        for bytes in [1000, 123_457, 5_000_000, 300_000_000] {
            let c = CUDAContext.sizeClass(bytes)
            XCTAssertGreaterThanOrEqual(c, bytes); XCTAssertLessThanOrEqual(Double(c), Double(bytes) * 1.125 + 512)
        }
    }

    func testRowMajorToColumnMajorMapping() {
        // y[M, N] = x[M, K] · W[N, K]ᵀ (a linear layer): cuBLAS computes yᵀ = W · xᵀ → op(A) = T on W, N on x.
        let g = ColumnMajorGEMM(rowMajorM: 1024, n: 576, k: 192, transposeA: false, transposeB: true, lda: 192, ldb: 192, ldc: 576)
        XCTAssertEqual(g.transA, 1); XCTAssertEqual(g.transB, 0)
        XCTAssertEqual(g.m, 576); XCTAssertEqual(g.n, 1024); XCTAssertEqual(g.k, 192)
        XCTAssertEqual(g.lda, 192); XCTAssertEqual(g.ldb, 192); XCTAssertEqual(g.ldc, 576)
    }
}

final class KernelBinaryCacheTests: XCTestCase {
    func makeCache() throws -> KernelBinaryCache {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-cuda-cache-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return KernelBinaryCache(directory: dir)
    }

    func testMissThenHit() throws {
        let cache = try makeCache()
        let key = KernelCacheKey(program: "p", source: "src", arch: 90, kind: .cubin, compilerVersion: "12.9")
        var compiles = 0
        let first = try cache.binary(for: key) { compiles += 1; return [1, 2, 3] }
        XCTAssertEqual(first.outcome, .compiled); XCTAssertEqual(first.bytes, [1, 2, 3])
        let second = try cache.binary(for: key) { compiles += 1; return [9] }
        XCTAssertEqual(second.outcome, .hit); XCTAssertEqual(second.bytes, [1, 2, 3]); XCTAssertEqual(compiles, 1)
    }

    func testArchSourceAndCompilerAreInTheKey() {
        let a = KernelCacheKey(program: "p", source: "src", arch: 90, kind: .cubin, compilerVersion: "12.9")
        XCTAssertNotEqual(a.fileName, KernelCacheKey(program: "p", source: "src", arch: 80, kind: .cubin, compilerVersion: "12.9").fileName)
        XCTAssertNotEqual(a.fileName, KernelCacheKey(program: "p", source: "src2", arch: 90, kind: .cubin, compilerVersion: "12.9").fileName)
        XCTAssertNotEqual(a.fileName, KernelCacheKey(program: "p", source: "src", arch: 90, kind: .cubin, compilerVersion: "13.0").fileName)
        XCTAssertNotEqual(a.fileName, KernelCacheKey(program: "p", source: "src", arch: 90, kind: .ptx, compilerVersion: "12.9").fileName)
        XCTAssertTrue(a.fileName.contains("sm90"), a.fileName)
    }

    func testCorruptEntriesAreRecompiledAndReported() throws {
        let cache = try makeCache()
        let key = KernelCacheKey(program: "p", source: "src", arch: 90, kind: .cubin, compilerVersion: "12.9")
        try cache.store([1, 2, 3, 4], for: key)
        let url = cache.directory.appendingPathComponent(key.fileName)
        // Flip the last payload byte: checksum mismatch.
        var data = try Data(contentsOf: url); data[data.count - 1] ^= 0xff; try data.write(to: url)
        XCTAssertThrowsError(try cache.load(key)) { XCTAssertTrue("\($0)".contains("checksum"), "\($0)") }
        let rebuilt = try cache.binary(for: key) { [5, 6] }
        guard case .replacedCorrupt = rebuilt.outcome else { return XCTFail("\(rebuilt.outcome)") }
        XCTAssertEqual(try cache.load(key), [5, 6])
        // Truncated file.
        data = try Data(contentsOf: url); try data.prefix(10).write(to: url)
        XCTAssertThrowsError(try cache.load(key))
        // An entry renamed onto another key's file is refused (identity line differs).
        let other = KernelCacheKey(program: "p", source: "other", arch: 90, kind: .cubin, compilerVersion: "12.9")
        try cache.store([7], for: other)
        try FileManager.default.removeItem(at: url)
        try FileManager.default.copyItem(at: cache.directory.appendingPathComponent(other.fileName), to: url)
        XCTAssertThrowsError(try cache.load(key)) { XCTAssertTrue("\($0)".contains("built for"), "\($0)") }
    }

    func testPrebuiltEntryIsUsedWithoutACompiler() throws {
        let cache = try makeCache()
        let built = KernelCacheKey(program: "p", source: "src", arch: 90, kind: .cubin, compilerVersion: "12.9")
        try cache.store([4, 2], for: built)
        let wanted = KernelCacheKey(program: "p", source: "src", arch: 90, kind: .cubin, compilerVersion: "")
        let found = try cache.binary(for: wanted, compile: nil)
        XCTAssertEqual(found.bytes, [4, 2]); XCTAssertEqual(found.outcome, .prebuilt(file: built.fileName))
        // Wrong arch: no compiler and nothing prebuilt is the typed error naming the search.
        let hopperOnly = KernelCacheKey(program: "p", source: "src", arch: 80, kind: .cubin, compilerVersion: "")
        XCTAssertThrowsError(try cache.binary(for: hopperOnly, compile: nil, compilerSearch: ["libnvrtc.so.12: not found"])) { error in
            XCTAssertTrue("\(error)".contains("no NVRTC found") && "\(error)".contains("libnvrtc.so.12"), "\(error)")
        }
    }

    func testDefaultDirectory() {
        XCTAssertEqual(KernelBinaryCache.defaultDirectory(environment: ["LORAKIT_CUDA_CACHE": "/c"]).path, "/c")
        XCTAssertEqual(KernelBinaryCache.defaultDirectory(environment: ["XDG_CACHE_HOME": "/x"]).path, "/x/lorakit/cuda")
        XCTAssertEqual(KernelBinaryCache.defaultDirectory(environment: ["HOME": "/h"]).path, "/h/.cache/lorakit/cuda")
    }
}
