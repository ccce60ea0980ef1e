// NVRTC, loaded at run time: CUDA C source → cubin (machine code for one GPU architecture) or PTX.
// Options are fixed per program so the cache key is (source, arch, NVRTC version, options).
import Foundation

/// What a compile produces.
public enum KernelBinaryKind: String, Sendable, Codable {
    /// Machine code for exactly one architecture (sm_XX): no JIT at load, any driver of the same major CUDA.
    case cubin
    /// Virtual ISA (compute_XX): the driver JIT-compiles it; used when NVRTC does not know the device's arch.
    case ptx
}

/// A loaded NVRTC library.
public final class NVRTCCompiler: @unchecked Sendable {
    typealias Version = @convention(c) (UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>) -> Int32
    typealias CreateProgram = @convention(c) (UnsafeMutablePointer<OpaquePointer?>, UnsafePointer<CChar>, UnsafePointer<CChar>?, Int32,
                                              UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    typealias CompileProgram = @convention(c) (OpaquePointer?, Int32, UnsafePointer<UnsafePointer<CChar>?>?) -> Int32
    typealias SizeOut = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int>) -> Int32
    typealias BytesOut = @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>) -> Int32
    typealias DestroyProgram = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias ErrorString = @convention(c) (Int32) -> UnsafePointer<CChar>?
    typealias IntOut = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32

    public let path: String
    /// (major, minor), e.g. (12, 9).
    public let version: (major: Int, minor: Int)
    private let create: CreateProgram, compile: CompileProgram, destroy: DestroyProgram
    private let ptxSize: SizeOut, ptx: BytesOut, cubinSize: SizeOut?, cubin: BytesOut?
    private let logSize: SizeOut, log: BytesOut, errorString: ErrorString
    private let numArchs: IntOut?, archs: IntOut?

    private init?(_ lib: SharedLibrary) {
        guard let v = lib.symbol("nvrtcVersion", as: Version.self),
              let c = lib.symbol("nvrtcCreateProgram", as: CreateProgram.self),
              let cp = lib.symbol("nvrtcCompileProgram", as: CompileProgram.self),
              let d = lib.symbol("nvrtcDestroyProgram", as: DestroyProgram.self),
              let ps = lib.symbol("nvrtcGetPTXSize", as: SizeOut.self), let p = lib.symbol("nvrtcGetPTX", as: BytesOut.self),
              let ls = lib.symbol("nvrtcGetProgramLogSize", as: SizeOut.self), let l = lib.symbol("nvrtcGetProgramLog", as: BytesOut.self),
              let e = lib.symbol("nvrtcGetErrorString", as: ErrorString.self) else { return nil }
        var major: Int32 = 0, minor: Int32 = 0
        guard v(&major, &minor) == 0 else { return nil }
        path = lib.path; version = (Int(major), Int(minor))
        create = c; compile = cp; destroy = d; ptxSize = ps; ptx = p; logSize = ls; log = l; errorString = e
        cubinSize = lib.symbol("nvrtcGetCUBINSize", as: SizeOut.self); cubin = lib.symbol("nvrtcGetCUBIN", as: BytesOut.self)
        numArchs = lib.symbol("nvrtcGetNumSupportedArchs", as: IntOut.self); archs = lib.symbol("nvrtcGetSupportedArchs", as: IntOut.self)
    }

    /// Loads the first NVRTC that works; the failure lists every attempt.
    public static func load(candidates: [String] = CUDALibrarySearch.nvrtcCandidates()) -> Result<NVRTCCompiler, CUDAError> {
        switch SharedLibrary.open(candidates, requiredSymbol: "nvrtcCreateProgram") {
        case .failure(let f): return .failure(.noCompiler(tried: f.tried))
        case .success(let lib):
            guard let compiler = NVRTCCompiler(lib) else { return .failure(.noCompiler(tried: ["\(lib.path): missing NVRTC entry points"])) }
            return .success(compiler)
        }
    }

    public static let shared: Result<NVRTCCompiler, CUDAError> = load()

    public var versionString: String { "\(version.major).\(version.minor)" }

    /// Compute capabilities (e.g. 80, 90) this NVRTC can target.
    public var supportedArchitectures: [Int] {
        guard let numArchs, let archs else { return [] }
        var n: Int32 = 0
        guard numArchs(&n) == 0, n > 0 else { return [] }
        var list = [Int32](repeating: 0, count: Int(n))
        guard archs(&list) == 0 else { return [] }
        return list.map(Int.init)
    }

    /// The fixed options of every LoRAKit kernel program for `arch` (compute capability, e.g. 90).
    /// IEEE division and square root stay on (the defaults): parity with the CPU matters more than the last %.
    public static func options(arch: Int, kind: KernelBinaryKind) -> [String] {
        ["--gpu-architecture=\(kind == .cubin ? "sm" : "compute")_\(arch)", "--std=c++17"]
    }

    /// Compiles `source` (named `program` in diagnostics) for `arch`. Throws `.compilation` with NVRTC's log.
    public func compile(source: String, program: String, arch: Int, kind: KernelBinaryKind) throws -> [UInt8] {
        try compileWithPTX(source: source, program: program, arch: arch, kind: kind).binary
    }

    /// As `compile`, also returning the PTX NVRTC produced on the way (the same compile, for inspection).
    public func compileWithPTX(source: String, program: String, arch: Int, kind: KernelBinaryKind) throws -> (binary: [UInt8], ptx: String) {
        var prog: OpaquePointer?
        let created = source.withCString { src in program.withCString { name in create(&prog, src, name, 0, nil, nil) } }
        guard created == 0, prog != nil else {
            throw CUDAError.compilation(program: program, arch: "\(arch)", log: "nvrtcCreateProgram: \(message(created))")
        }
        defer { _ = destroy(&prog) }
        let opts = Self.options(arch: arch, kind: kind)
        let cStrings = opts.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let status = cStrings.map { UnsafePointer($0) }.withUnsafeBufferPointer { buf in
            compile(prog, Int32(buf.count), buf.baseAddress)
        }
        let buildLog = readBytes(prog, size: logSize, bytes: log).map { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } ?? ""
        guard status == 0 else {
            throw CUDAError.compilation(program: program, arch: opts[0], log: "\(message(status))\n\(buildLog)")
        }
        let output: [UInt8]?
        switch kind {
        case .ptx: output = readBytes(prog, size: ptxSize, bytes: ptx)
        case .cubin:
            guard let cubinSize, let cubin else {
                throw CUDAError.compilation(program: program, arch: opts[0], log: "this NVRTC (\(versionString)) cannot emit cubin")
            }
            output = readBytes(prog, size: cubinSize, bytes: cubin)
        }
        guard let output, !output.isEmpty else {
            throw CUDAError.compilation(program: program, arch: opts[0], log: "NVRTC returned no \(kind.rawValue)")
        }
        let ptxText = kind == .ptx ? output : (readBytes(prog, size: ptxSize, bytes: ptx) ?? [])
        return (output, String(decoding: ptxText.prefix { $0 != 0 }, as: UTF8.self))
    }

    private func readBytes(_ prog: OpaquePointer?, size: SizeOut, bytes: BytesOut) -> [UInt8]? {
        var n = 0
        guard size(prog, &n) == 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: max(n, 1))
        guard bytes(prog, &buffer) == 0 else { return nil }
        return buffer.prefix(n).map { UInt8(bitPattern: $0) }
    }

    private func message(_ code: Int32) -> String {
        errorString(code).map { String(cString: $0) } ?? "nvrtcResult \(code)"
    }
}
