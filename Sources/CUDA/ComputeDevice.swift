// Which device a command runs on: `--device cpu|cuda|auto`. `auto` picks CUDA when a driver loads and reports
// a device, else the CPU; `cuda` without a driver is an error that lists what was tried.
import Foundation

/// The user's choice, as parsed from `--device`.
public enum DeviceChoice: String, CaseIterable, Sendable {
    case cpu, cuda, auto

    /// Parses a `--device` value (case-insensitive); throws `.unknownDevice` otherwise.
    public init(parsing value: String) throws {
        guard let choice = DeviceChoice(rawValue: value.lowercased()) else { throw CUDAError.unknownDevice(value) }
        self = choice
    }
}

/// A CUDA device as the driver describes it.
public struct CUDADeviceInfo: Equatable, Sendable {
    public var ordinal: Int
    public var name: String
    /// Compute capability major·10 + minor (90 for H100/H200, 80 for A100).
    public var computeCapability: Int
    public var multiprocessors: Int
    public var memoryBytes: Int
    /// Largest dynamic shared memory a block may opt into.
    public var maxSharedBytesPerBlock: Int
    /// Driver API version, e.g. 12040 for CUDA 12.4.
    public var driverVersion: Int
    public var driverPath: String

    public init(ordinal: Int, name: String, computeCapability: Int, multiprocessors: Int, memoryBytes: Int,
                maxSharedBytesPerBlock: Int, driverVersion: Int, driverPath: String) {
        self.ordinal = ordinal; self.name = name; self.computeCapability = computeCapability
        self.multiprocessors = multiprocessors; self.memoryBytes = memoryBytes
        self.maxSharedBytesPerBlock = maxSharedBytesPerBlock; self.driverVersion = driverVersion; self.driverPath = driverPath
    }
}

/// Where a command actually runs.
public enum ResolvedDevice: Equatable, Sendable {
    case cpu
    case cuda(CUDADeviceInfo)

    public var name: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let info): return "cuda:\(info.ordinal) (\(info.name), sm_\(info.computeCapability))"
        }
    }
}

public enum DeviceResolver {
    /// Resolves `choice`. `probe` finds the first CUDA device (injected by tests).
    public static func resolve(_ choice: DeviceChoice,
                               probe: () -> Result<CUDADeviceInfo, CUDAError> = { CUDADeviceProbe.firstDevice() }) throws -> ResolvedDevice {
        switch choice {
        case .cpu: return .cpu
        case .cuda:
            switch probe() {
            case .success(let info): return .cuda(info)
            case .failure(let error): throw error
            }
        case .auto:
            if case .success(let info) = probe() { return .cuda(info) }
            return .cpu
        }
    }
}

public enum CUDADeviceProbe {
    /// Device 0 (or `LORAKIT_CUDA_DEVICE`) of the loaded driver.
    public static func firstDevice() -> Result<CUDADeviceInfo, CUDAError> {
        switch CUDADriverAPI.shared {
        case .failure(let error): return .failure(error)
        case .success(let api):
            do { return .success(try describe(api, ordinal: Int(ProcessInfo.processInfo.environment["LORAKIT_CUDA_DEVICE"] ?? "0") ?? 0)) }
            catch let error as CUDAError { return .failure(error) }
            catch { return .failure(.noDevice(driver: api.library.path, detail: "\(error)")) }
        }
    }

    static func describe(_ api: CUDADriverAPI, ordinal: Int) throws -> CUDADeviceInfo {
        var count: Int32 = 0
        try api.check(api.cuDeviceGetCount(&count), "cuDeviceGetCount")
        guard count > 0 else { throw CUDAError.noDevice(driver: api.library.path, detail: "reports 0 devices") }
        guard ordinal >= 0, ordinal < count else {
            throw CUDAError.noDevice(driver: api.library.path, detail: "has \(count) device(s); LORAKIT_CUDA_DEVICE=\(ordinal) is out of range")
        }
        var device: Int32 = 0
        try api.check(api.cuDeviceGet(&device, Int32(ordinal)), "cuDeviceGet(\(ordinal))")
        var nameBuffer = [CChar](repeating: 0, count: 256)
        try api.check(api.cuDeviceGetName(&nameBuffer, 255, device), "cuDeviceGetName")
        func attribute(_ a: CUDADeviceAttribute) throws -> Int {
            var v: Int32 = 0
            try api.check(api.cuDeviceGetAttribute(&v, a.rawValue, device), "cuDeviceGetAttribute(\(a))")
            return Int(v)
        }
        var memory = 0, version: Int32 = 0
        try api.check(api.cuDeviceTotalMem(&memory, device), "cuDeviceTotalMem")
        try api.check(api.cuDriverGetVersion(&version), "cuDriverGetVersion")
        return CUDADeviceInfo(ordinal: ordinal, name: String(cString: nameBuffer),
                              computeCapability: try attribute(.computeCapabilityMajor) * 10 + attribute(.computeCapabilityMinor),
                              multiprocessors: try attribute(.multiprocessorCount), memoryBytes: memory,
                              maxSharedBytesPerBlock: try attribute(.maxSharedMemoryPerBlockOptin),
                              driverVersion: Int(version), driverPath: api.library.path)
    }
}
