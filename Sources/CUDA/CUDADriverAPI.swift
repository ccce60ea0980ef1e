// The CUDA driver API entry points LoRAKit calls, loaded from libcuda.so.1 at run time (no CUDA at build
// time). Handles are opaque pointers, device memory a 64-bit address, results CUresult (0 = success); the
// `_v2` symbols are the ones the CUDA headers map these names to.
import Foundation

public typealias CUDAHandle = OpaquePointer
public typealias CUDADevicePointer = UInt64

final class CUDADriverAPI: @unchecked Sendable {
    typealias Init = @convention(c) (UInt32) -> Int32
    typealias IntOut = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
    typealias DeviceGet = @convention(c) (UnsafeMutablePointer<Int32>, Int32) -> Int32
    typealias DeviceGetName = @convention(c) (UnsafeMutablePointer<CChar>, Int32, Int32) -> Int32
    typealias DeviceGetAttribute = @convention(c) (UnsafeMutablePointer<Int32>, Int32, Int32) -> Int32
    typealias DeviceTotalMem = @convention(c) (UnsafeMutablePointer<Int>, Int32) -> Int32
    typealias PrimaryCtxRetain = @convention(c) (UnsafeMutablePointer<CUDAHandle?>, Int32) -> Int32
    typealias HandleCall = @convention(c) (CUDAHandle?) -> Int32
    typealias NoArgs = @convention(c) () -> Int32
    typealias MemAlloc = @convention(c) (UnsafeMutablePointer<CUDADevicePointer>, Int) -> Int32
    typealias MemFree = @convention(c) (CUDADevicePointer) -> Int32
    typealias MemGetInfo = @convention(c) (UnsafeMutablePointer<Int>, UnsafeMutablePointer<Int>) -> Int32
    typealias CopyHtoD = @convention(c) (CUDADevicePointer, UnsafeRawPointer?, Int, CUDAHandle?) -> Int32
    typealias CopyDtoH = @convention(c) (UnsafeMutableRawPointer?, CUDADevicePointer, Int, CUDAHandle?) -> Int32
    typealias CopyDtoD = @convention(c) (CUDADevicePointer, CUDADevicePointer, Int, CUDAHandle?) -> Int32
    typealias MemsetD8 = @convention(c) (CUDADevicePointer, UInt8, Int, CUDAHandle?) -> Int32
    typealias ModuleLoadData = @convention(c) (UnsafeMutablePointer<CUDAHandle?>, UnsafeRawPointer) -> Int32
    typealias ModuleGetFunction = @convention(c) (UnsafeMutablePointer<CUDAHandle?>, CUDAHandle?, UnsafePointer<CChar>) -> Int32
    typealias FuncSetAttribute = @convention(c) (CUDAHandle?, Int32, Int32) -> Int32
    typealias LaunchKernel = @convention(c) (CUDAHandle?, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, CUDAHandle?,
                                             UnsafeMutablePointer<UnsafeMutableRawPointer?>?, UnsafeMutablePointer<UnsafeMutableRawPointer?>?) -> Int32
    typealias CreateWithFlags = @convention(c) (UnsafeMutablePointer<CUDAHandle?>, UInt32) -> Int32
    typealias EventRecord = @convention(c) (CUDAHandle?, CUDAHandle?) -> Int32
    typealias EventElapsed = @convention(c) (UnsafeMutablePointer<Float>, CUDAHandle?, CUDAHandle?) -> Int32
    typealias GetErrorName = @convention(c) (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>) -> Int32

    let library: SharedLibrary
    let cuInit: Init
    let cuDriverGetVersion: IntOut
    let cuDeviceGetCount: IntOut
    let cuDeviceGet: DeviceGet
    let cuDeviceGetName: DeviceGetName
    let cuDeviceGetAttribute: DeviceGetAttribute
    let cuDeviceTotalMem: DeviceTotalMem
    let cuDevicePrimaryCtxRetain: PrimaryCtxRetain
    let cuCtxSetCurrent: HandleCall
    let cuCtxSynchronize: NoArgs
    let cuMemAlloc: MemAlloc
    let cuMemFree: MemFree
    let cuMemGetInfo: MemGetInfo
    let cuMemcpyHtoDAsync: CopyHtoD
    let cuMemcpyDtoHAsync: CopyDtoH
    let cuMemcpyDtoDAsync: CopyDtoD
    let cuMemsetD8Async: MemsetD8
    let cuModuleLoadData: ModuleLoadData
    let cuModuleUnload: HandleCall
    let cuModuleGetFunction: ModuleGetFunction
    let cuFuncSetAttribute: FuncSetAttribute
    let cuLaunchKernel: LaunchKernel
    let cuStreamCreate: CreateWithFlags
    let cuStreamDestroy: HandleCall
    let cuStreamSynchronize: HandleCall
    let cuEventCreate: CreateWithFlags
    let cuEventRecord: EventRecord
    let cuEventSynchronize: HandleCall
    let cuEventElapsedTime: EventElapsed
    let cuEventDestroy: HandleCall
    let cuGetErrorName: GetErrorName?

    /// Binds every symbol; nil names the first one missing (an old or broken driver).
    private init?(_ lib: SharedLibrary, missing: inout String) {
        func s<T>(_ name: String, _ t: T.Type) -> T? {
            let f = lib.symbol(name, as: t)
            if f == nil && missing.isEmpty { missing = name }
            return f
        }
        guard let a = s("cuInit", Init.self), let b = s("cuDriverGetVersion", IntOut.self),
              let c = s("cuDeviceGetCount", IntOut.self), let d = s("cuDeviceGet", DeviceGet.self),
              let e = s("cuDeviceGetName", DeviceGetName.self), let f = s("cuDeviceGetAttribute", DeviceGetAttribute.self),
              let g = s("cuDeviceTotalMem_v2", DeviceTotalMem.self), let h = s("cuDevicePrimaryCtxRetain", PrimaryCtxRetain.self),
              let i = s("cuCtxSetCurrent", HandleCall.self), let j = s("cuCtxSynchronize", NoArgs.self),
              let k = s("cuMemAlloc_v2", MemAlloc.self), let l = s("cuMemFree_v2", MemFree.self),
              let m = s("cuMemGetInfo_v2", MemGetInfo.self), let n = s("cuMemcpyHtoDAsync_v2", CopyHtoD.self),
              let o = s("cuMemcpyDtoHAsync_v2", CopyDtoH.self), let p = s("cuMemcpyDtoDAsync_v2", CopyDtoD.self),
              let q = s("cuMemsetD8Async", MemsetD8.self), let r = s("cuModuleLoadData", ModuleLoadData.self),
              let t = s("cuModuleUnload", HandleCall.self), let u = s("cuModuleGetFunction", ModuleGetFunction.self),
              let v = s("cuFuncSetAttribute", FuncSetAttribute.self), let w = s("cuLaunchKernel", LaunchKernel.self),
              let x = s("cuStreamCreate", CreateWithFlags.self), let y = s("cuStreamDestroy_v2", HandleCall.self),
              let z = s("cuStreamSynchronize", HandleCall.self), let ea = s("cuEventCreate", CreateWithFlags.self),
              let eb = s("cuEventRecord", EventRecord.self), let ec = s("cuEventSynchronize", HandleCall.self),
              let ed = s("cuEventElapsedTime", EventElapsed.self), let ee = s("cuEventDestroy_v2", HandleCall.self)
        else { return nil }
        library = lib
        cuInit = a; cuDriverGetVersion = b; cuDeviceGetCount = c; cuDeviceGet = d; cuDeviceGetName = e
        cuDeviceGetAttribute = f; cuDeviceTotalMem = g; cuDevicePrimaryCtxRetain = h; cuCtxSetCurrent = i
        cuCtxSynchronize = j; cuMemAlloc = k; cuMemFree = l; cuMemGetInfo = m; cuMemcpyHtoDAsync = n
        cuMemcpyDtoHAsync = o; cuMemcpyDtoDAsync = p; cuMemsetD8Async = q; cuModuleLoadData = r; cuModuleUnload = t
        cuModuleGetFunction = u; cuFuncSetAttribute = v; cuLaunchKernel = w; cuStreamCreate = x; cuStreamDestroy = y
        cuStreamSynchronize = z; cuEventCreate = ea; cuEventRecord = eb; cuEventSynchronize = ec
        cuEventElapsedTime = ed; cuEventDestroy = ee
        cuGetErrorName = lib.symbol("cuGetErrorName", as: GetErrorName.self)
    }

    /// Loads the driver and calls cuInit; the failure lists every path tried and why.
    static func load(candidates: [String] = CUDALibrarySearch.driverCandidates()) -> Result<CUDADriverAPI, CUDAError> {
        switch SharedLibrary.open(candidates, requiredSymbol: "cuInit") {
        case .failure(let f): return .failure(.noDriver(tried: f.tried))
        case .success(let lib):
            var missing = ""
            guard let api = CUDADriverAPI(lib, missing: &missing) else {
                return .failure(.noDriver(tried: ["\(lib.path): driver too old (no \(missing))"]))
            }
            let status = api.cuInit(0)
            guard status == 0 else {
                return .failure(.noDriver(tried: ["\(lib.path): cuInit failed with \(api.errorName(status)) (\(status))"]))
            }
            return .success(api)
        }
    }

    static let shared: Result<CUDADriverAPI, CUDAError> = load()

    func errorName(_ code: Int32) -> String {
        var name: UnsafePointer<CChar>?
        if let f = cuGetErrorName, f(code, &name) == 0, let name { return String(cString: name) }
        return "CUresult \(code)"
    }

    /// Throws a typed error naming `call` unless `code` is CUDA_SUCCESS.
    func check(_ code: Int32, _ call: @autoclosure () -> String) throws {
        if code != 0 { throw CUDAError.driver(call: call(), code: code, name: errorName(code)) }
    }
}

/// Device attributes used (CUdevice_attribute values).
enum CUDADeviceAttribute: Int32 {
    case multiprocessorCount = 16
    case computeCapabilityMajor = 75
    case computeCapabilityMinor = 76
    case maxSharedMemoryPerBlockOptin = 97
}

/// CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES.
let cudaFuncAttributeMaxDynamicSharedBytes: Int32 = 8
