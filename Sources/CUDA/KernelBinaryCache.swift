// On-disk cache of compiled kernel programs, one file per (program, source hash, GPU arch, NVRTC version,
// binary kind), so a process compiles a program once per machine instead of once per run (NVRTC takes ~1 s per
// program). Default directory: $LORAKIT_CUDA_CACHE, else $XDG_CACHE_HOME/lorakit/cuda, else ~/.cache/lorakit/cuda.
//
// Entry file: "LORAKIT-KERNEL 1\n" <key identity> "\n" <payload bytes> " " <FNV-1a 64 of payload, hex> "\n"
// <payload>. A truncated, edited or mismatched entry is treated as a miss and rewritten. Writes are atomic
// (temp + rename), so concurrent processes never read half a file.
//
// The cache doubles as a prebuilt bundle: `lorakit cuda compile --arch 90 --cache-dir DIR` fills DIR on a
// machine with NVRTC, and a GPU machine without NVRTC (the 100 MB library need not travel) loads the entry
// whose program, source hash and arch match, whatever NVRTC version built it.
import Foundation
import Formats

/// What identifies one compiled binary.
public struct KernelCacheKey: Hashable, Sendable {
    public let program: String
    public let sourceHash: UInt64
    public let arch: Int
    public let kind: KernelBinaryKind
    public let compilerVersion: String
    public let options: [String]

    public init(program: String, source: String, arch: Int, kind: KernelBinaryKind, compilerVersion: String) {
        self.program = program; self.arch = arch; self.kind = kind; self.compilerVersion = compilerVersion
        options = NVRTCCompiler.options(arch: arch, kind: kind)
        sourceHash = fnv1a64(Array((source + "\u{0}" + options.joined(separator: " ")).utf8))
    }

    var hashHex: String { hex64(sourceHash) }
    /// Everything but the compiler version: what a prebuilt entry must match.
    var versionlessPrefix: String { "\(program)-\(hashHex)-sm\(arch)-nvrtc" }
    public var fileName: String { "\(versionlessPrefix)\(compilerVersion).\(kind.rawValue)" }
    var identity: String { "\(program) \(hashHex) sm\(arch) \(kind.rawValue) " + options.joined(separator: " ") }
}

/// How a binary was obtained (reported by `lorakit cuda compile` and tested).
public enum KernelCacheOutcome: Equatable, Sendable {
    case hit, compiled, replacedCorrupt(reason: String), prebuilt(file: String)
}

public struct KernelBinaryCache: Sendable {
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let dir = environment["LORAKIT_CUDA_CACHE"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return URL(fileURLWithPath: xdg).appendingPathComponent("lorakit/cuda") }
        let home = environment["HOME"] ?? NSTemporaryDirectory()
        return URL(fileURLWithPath: home).appendingPathComponent(".cache/lorakit/cuda")
    }

    static let magic = "LORAKIT-KERNEL 1\n"

    /// The payload stored for `key`, nil on a miss; throws `.corruptCacheEntry` when a file exists but is unusable.
    public func load(_ key: KernelCacheKey) throws -> [UInt8]? {
        let url = directory.appendingPathComponent(key.fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return try Self.decode(Array(data), identity: key.identity, path: url.path)
    }

    /// Writes `payload` for `key` atomically.
    public func store(_ payload: [UInt8], for key: KernelCacheKey) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let header = Self.magic + key.identity + "\n" + "\(payload.count) \(hex64(fnv1a64(payload)))\n"
        try AtomicFile.write(Data(Array(header.utf8) + payload), to: directory.appendingPathComponent(key.fileName))
    }

    /// The binary for `key`: from the cache, else compiled by `compile` and stored. A corrupt entry is replaced.
    /// With `compile` nil (no NVRTC on this machine) any valid entry for the same program, source and arch is
    /// used, whichever NVRTC built it; none is `.noCompiler(tried:)` with `compilerSearch` listed.
    public func binary(for key: KernelCacheKey, compile: (() throws -> [UInt8])?, compilerSearch: [String] = [])
        throws -> (bytes: [UInt8], outcome: KernelCacheOutcome) {
        guard let compile else { return try prebuilt(for: key, compilerSearch: compilerSearch) }
        var outcome = KernelCacheOutcome.compiled
        do {
            if let bytes = try load(key) { return (bytes, .hit) }
        } catch CUDAError.corruptCacheEntry(_, let reason) {
            outcome = .replacedCorrupt(reason: reason)
        }
        let bytes = try compile()
        try store(bytes, for: key)
        return (bytes, outcome)
    }

    private func prebuilt(for key: KernelCacheKey, compilerSearch: [String]) throws -> (bytes: [UInt8], outcome: KernelCacheOutcome) {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        var problems: [String] = []
        for file in files.sorted(by: >) where file.hasPrefix(key.versionlessPrefix) && file.hasSuffix("." + key.kind.rawValue) {
            let path = directory.appendingPathComponent(file).path
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            do { return (try Self.decode(Array(data), identity: key.identity, path: path), .prebuilt(file: file)) }
            catch { problems.append("\(error)") }
        }
        throw CUDAError.noCompiler(tried: compilerSearch + ["no prebuilt \(key.versionlessPrefix)*.\(key.kind.rawValue) in \(directory.path)"] + problems)
    }

    static func decode(_ bytes: [UInt8], identity: String, path: String) throws -> [UInt8] {
        func corrupt(_ reason: String) -> CUDAError { .corruptCacheEntry(path: path, reason: reason) }
        let magic = Array(Self.magic.utf8)
        guard bytes.starts(with: magic) else { throw corrupt("not a LoRAKit kernel cache file") }
        var cursor = magic.count
        func line() -> String? {
            guard let end = bytes[cursor...].firstIndex(of: 10) else { return nil }
            defer { cursor = end + 1 }
            return String(decoding: bytes[cursor..<end], as: UTF8.self)
        }
        guard let storedIdentity = line() else { throw corrupt("truncated header") }
        guard storedIdentity == identity else { throw corrupt("built for '\(storedIdentity)', expected '\(identity)'") }
        guard let sizeLine = line() else { throw corrupt("truncated header") }
        let parts = sizeLine.split(separator: " ")
        guard parts.count == 2, let count = Int(parts[0]) else { throw corrupt("bad size line '\(sizeLine)'") }
        let payload = Array(bytes[cursor...])
        guard payload.count == count else { throw corrupt("payload has \(payload.count) bytes, header says \(count)") }
        guard hex64(fnv1a64(payload)) == parts[1] else { throw corrupt("checksum mismatch") }
        return payload
    }
}

/// FNV-1a, 64-bit: a content hash for cache keys and entry checksums (not a security boundary).
func fnv1a64(_ bytes: [UInt8]) -> UInt64 {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in bytes { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
    return h
}

func hex64(_ v: UInt64) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 16 - s.count) + s
}
