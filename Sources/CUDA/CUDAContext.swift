// A CUDA device in use: its primary context, one stream on which every kernel, copy and GEMM of LoRAKit is
// queued (so work is ordered without host synchronisation), the loaded kernel modules and the cuBLAS handle.
// All device work of a process goes through one CUDAContext (`CUDAContext.shared()`); it is not thread-safe
// (the trainer and generator drive it from one thread, as they drive BLAS).
import Foundation
import TensorCore

public final class CUDAContext: @unchecked Sendable {
    public let device: CUDADeviceInfo
    let api: CUDADriverAPI
    let context: CUDAHandle?
    /// The stream all work is queued on.
    let stream: CUDAHandle?
    let cache: KernelBinaryCache
    private var modules: [KernelProgram: CUDAHandle] = [:]
    private var functions: [KernelFunction: CUDAHandle] = [:]
    private var cublas: (library: CuBLASLibrary, handle: OpaquePointer?)?
    /// Why cuBLAS is not used (nil when it is); GEMMs then run on the fallback kernel.
    public private(set) var blasUnavailableReason: String?
    /// How each program's binary was obtained (cache hit, compiled, prebuilt), for `lorakit cuda info`.
    public private(set) var programOutcomes: [KernelProgram: KernelCacheOutcome] = [:]

    init(api: CUDADriverAPI, device: CUDADeviceInfo, cache: KernelBinaryCache) throws {
        self.api = api; self.device = device; self.cache = cache
        var dev: Int32 = 0
        try api.check(api.cuDeviceGet(&dev, Int32(device.ordinal)), "cuDeviceGet")
        var ctx: CUDAHandle?
        try api.check(api.cuDevicePrimaryCtxRetain(&ctx, dev), "cuDevicePrimaryCtxRetain")
        try api.check(api.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
        context = ctx
        var s: CUDAHandle?
        try api.check(api.cuStreamCreate(&s, 1 /* CU_STREAM_NON_BLOCKING */), "cuStreamCreate")
        stream = s
        switch CuBLASLibrary.shared {
        case .success(let lib):
            var handle: OpaquePointer?
            if lib.create(&handle) == 0, lib.setStream(handle, s) == 0 { cublas = (lib, handle) }
            else { blasUnavailableReason = "\(lib.path): cublasCreate failed" }
        case .failure(let error): blasUnavailableReason = "\(error)"
        }
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: CUDAContext?

    /// The process's context on the device `DeviceResolver` chose (created on first use).
    public static func shared(cache: KernelBinaryCache = KernelBinaryCache(directory: KernelBinaryCache.defaultDirectory())) throws -> CUDAContext {
        lock.lock(); defer { lock.unlock() }
        if let instance { return instance }
        let api: CUDADriverAPI
        switch CUDADriverAPI.shared { case .success(let a): api = a; case .failure(let e): throw e }
        let info = try CUDADeviceProbe.describe(api, ordinal: Int(ProcessInfo.processInfo.environment["LORAKIT_CUDA_DEVICE"] ?? "0") ?? 0)
        let created = try CUDAContext(api: api, device: info, cache: cache)
        instance = created
        return created
    }

    public var usesCuBLAS: Bool { cublas != nil && !forceFallbackGEMM }
    /// Route GEMMs to the fallback kernel even when cuBLAS is loaded (the self-test checks both paths).
    public var forceFallbackGEMM = false
    var blas: (library: CuBLASLibrary, handle: OpaquePointer?)? { forceFallbackGEMM ? nil : cublas }

    // MARK: memory

    /// Freed device blocks by size class, handed out again: a training step allocates the same shapes every layer
    /// and every step, and cuMemAlloc/cuMemFree are slow and synchronise the device. Reuse is safe because all
    /// work is queued on one stream: a block's earlier uses run before any later one.
    private var freeBlocks: [Int: [CUDADevicePointer]] = [:]
    public private(set) var cachedBytes = 0

    /// Bytes actually reserved for a request: multiples of 512 B below 1 MiB, else eight classes per power of two.
    public static func sizeClass(_ bytes: Int) -> Int {
        let b = max(bytes, 1)
        if b < 1 << 20 { return (b + 511) / 512 * 512 }
        let step = 1 << (Int.bitWidth - b.leadingZeroBitCount - 4)  // 1/8 of the power of two below b
        return (b + step - 1) / step * step
    }

    func allocate(bytes: Int) throws -> CUDADevicePointer {
        let size = Self.sizeClass(bytes)
        if var list = freeBlocks[size], let p = list.popLast() {
            freeBlocks[size] = list; cachedBytes -= size
            return p
        }
        var p: CUDADevicePointer = 0
        var status = api.cuMemAlloc(&p, size)
        if status == 2 /* CUDA_ERROR_OUT_OF_MEMORY */ && cachedBytes > 0 {
            releaseCachedMemory()
            status = api.cuMemAlloc(&p, size)
        }
        try api.check(status, "cuMemAlloc(\(size) bytes)")
        return p
    }
    func free(_ p: CUDADevicePointer, bytes: Int) {
        let size = Self.sizeClass(bytes)
        freeBlocks[size, default: []].append(p); cachedBytes += size
    }
    /// Returns every cached block to the driver.
    public func releaseCachedMemory() {
        _ = api.cuStreamSynchronize(stream)
        for (_, list) in freeBlocks { for p in list { _ = api.cuMemFree(p) } }
        freeBlocks = [:]; cachedBytes = 0
    }

    func upload(_ bytes: UnsafeRawBufferPointer, to p: CUDADevicePointer) throws {
        guard bytes.count > 0 else { return }
        try api.check(api.cuMemcpyHtoDAsync(p, bytes.baseAddress, bytes.count, stream), "cuMemcpyHtoDAsync(\(bytes.count) bytes)")
        // The host buffer may be freed right after: wait for the copy (uploads are once per weight or batch).
        try synchronize()
    }
    func download(_ p: CUDADevicePointer, into bytes: UnsafeMutableRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        try api.check(api.cuMemcpyDtoHAsync(bytes.baseAddress, p, bytes.count, stream), "cuMemcpyDtoHAsync(\(bytes.count) bytes)")
        try synchronize()
    }
    func copy(from src: CUDADevicePointer, to dst: CUDADevicePointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try api.check(api.cuMemcpyDtoDAsync(dst, src, bytes, stream), "cuMemcpyDtoDAsync")
    }
    func zero(_ p: CUDADevicePointer, bytes: Int) throws {
        guard bytes > 0 else { return }
        try api.check(api.cuMemsetD8Async(p, 0, bytes, stream), "cuMemsetD8Async")
    }

    /// (free, total) device memory in bytes.
    public func memoryInfo() throws -> (free: Int, total: Int) {
        var f = 0, t = 0
        try api.check(api.cuMemGetInfo(&f, &t), "cuMemGetInfo")
        return (f, t)
    }

    public func synchronize() throws { try api.check(api.cuStreamSynchronize(stream), "cuStreamSynchronize") }

    // MARK: kernels

    /// Loads `program` (cache, NVRTC or prebuilt) if needed.
    @discardableResult
    func module(_ program: KernelProgram) throws -> CUDAHandle {
        if let m = modules[program] { return m }
        let bytes = try Self.binary(for: program, arch: device.computeCapability, cache: cache).bytes
        var m: CUDAHandle?
        try bytes.withUnsafeBytes { raw in
            try api.check(api.cuModuleLoadData(&m, raw.baseAddress!), "cuModuleLoadData(\(program.rawValue))")
        }
        guard let m else { throw CUDAError.driver(call: "cuModuleLoadData(\(program.rawValue))", code: -1, name: "null module") }
        modules[program] = m
        return m
    }

    /// The binary of `program` for `arch`: cubin when this NVRTC targets the arch, else PTX of the newest arch it
    /// knows (the driver JIT-compiles it); without NVRTC, a prebuilt cubin from the cache directory.
    static func binary(for program: KernelProgram, arch: Int, cache: KernelBinaryCache) throws -> (bytes: [UInt8], outcome: KernelCacheOutcome) {
        switch NVRTCCompiler.shared {
        case .success(let nvrtc):
            let supported = nvrtc.supportedArchitectures
            let (target, kind): (Int, KernelBinaryKind) = supported.isEmpty || supported.contains(arch)
                ? (arch, .cubin) : (supported.filter { $0 <= arch }.max() ?? arch, .ptx)
            let key = KernelCacheKey(program: program.rawValue, source: program.source, arch: target, kind: kind, compilerVersion: nvrtc.versionString)
            return try cache.binary(for: key) {
                try nvrtc.compile(source: program.source, program: program.rawValue, arch: target, kind: kind)
            }
        case .failure(let error):
            let tried: [String]
            if case .noCompiler(let t) = error { tried = t } else { tried = ["\(error)"] }
            let key = KernelCacheKey(program: program.rawValue, source: program.source, arch: arch, kind: .cubin, compilerVersion: "")
            return try cache.binary(for: key, compile: nil, compilerSearch: tried)
        }
    }

    func function(_ f: KernelFunction) throws -> CUDAHandle {
        if let h = functions[f] { return h }
        let m = try module(f.program)
        var h: CUDAHandle?
        try api.check(api.cuModuleGetFunction(&h, m, f.name), "cuModuleGetFunction(\(f.name))")
        guard let h else { throw CUDAError.invalidLaunch(kernel: f.name, reason: "not found in module \(f.program.rawValue)") }
        functions[f] = h
        return h
    }

    /// Queues `f` with `geometry` and `arguments` (in the kernel's parameter order) on the stream.
    func launch(_ f: KernelFunction, _ geometry: LaunchGeometry, _ arguments: [KernelArgument]) throws {
        let h = try function(f)
        if geometry.sharedBytes > 48 * 1024 {
            guard geometry.sharedBytes <= device.maxSharedBytesPerBlock else {
                throw CUDAError.invalidLaunch(kernel: f.name, reason: "needs \(geometry.sharedBytes) B shared memory, device allows \(device.maxSharedBytesPerBlock)")
            }
            try api.check(api.cuFuncSetAttribute(h, cudaFuncAttributeMaxDynamicSharedBytes, Int32(geometry.sharedBytes)), "cuFuncSetAttribute(\(f.name))")
        }
        // Each argument lives in its own 8-byte slot; the kernel reads its declared size from the slot.
        let slots = UnsafeMutablePointer<UInt64>.allocate(capacity: max(arguments.count, 1))
        defer { slots.deallocate() }
        let pointers = UnsafeMutablePointer<UnsafeMutableRawPointer?>.allocate(capacity: max(arguments.count, 1))
        defer { pointers.deallocate() }
        for (i, a) in arguments.enumerated() {
            slots[i] = a.bits
            pointers[i] = UnsafeMutableRawPointer(slots + i)
        }
        try api.check(api.cuLaunchKernel(h, UInt32(geometry.grid.x), UInt32(geometry.grid.y), UInt32(geometry.grid.z),
                                         UInt32(geometry.block), 1, 1, UInt32(geometry.sharedBytes), stream, pointers, nil),
                      "cuLaunchKernel(\(f.name), grid \(geometry.grid), block \(geometry.block), shared \(geometry.sharedBytes))")
    }

    /// Device time of `body` in milliseconds (events on the stream).
    public func timed(_ body: () throws -> Void) throws -> Double {
        var start: CUDAHandle?, end: CUDAHandle?
        try api.check(api.cuEventCreate(&start, 0), "cuEventCreate"); try api.check(api.cuEventCreate(&end, 0), "cuEventCreate")
        defer { _ = api.cuEventDestroy(start); _ = api.cuEventDestroy(end) }
        try api.check(api.cuEventRecord(start, stream), "cuEventRecord")
        try body()
        try api.check(api.cuEventRecord(end, stream), "cuEventRecord")
        try api.check(api.cuEventSynchronize(end), "cuEventSynchronize")
        var ms: Float = 0
        try api.check(api.cuEventElapsedTime(&ms, start, end), "cuEventElapsedTime")
        return Double(ms)
    }
}

/// One kernel parameter. Scalars are stored little-endian in the low bytes of a 64-bit slot, which is how the
/// driver reads a parameter of the declared (4- or 8-byte) size from the pointer it is given.
public enum KernelArgument: Sendable {
    case pointer(CUDADevicePointer)
    case null
    case int32(Int32)
    case int64(Int64)
    case uint64(UInt64)
    case float32(Float)

    var bits: UInt64 {
        switch self {
        case .pointer(let p): return p
        case .null: return 0
        case .int32(let v): return UInt64(UInt32(bitPattern: v))
        case .int64(let v): return UInt64(bitPattern: v)
        case .uint64(let v): return v
        case .float32(let v): return UInt64(v.bitPattern)
        }
    }

    static func int(_ v: Int) -> KernelArgument { .int32(Int32(v)) }
    static func long(_ v: Int) -> KernelArgument { .int64(Int64(v)) }
}
