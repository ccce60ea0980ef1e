// Typed errors of the CUDA backend. Every message names what was attempted (the libraries tried, the kernel,
// the shape) so `--device cuda` on a machine without a GPU says exactly why it cannot run.

public enum CUDAError: Error, CustomStringConvertible, Equatable {
    /// libcuda.so.1 could not be loaded, or loads but reports no usable device. `tried` lists each attempt.
    case noDriver(tried: [String])
    /// The driver loaded but reports no CUDA device.
    case noDevice(driver: String, detail: String)
    /// libnvrtc could not be loaded (and no prebuilt cubin matched). `tried` lists each attempt.
    case noCompiler(tried: [String])
    /// libcublas could not be loaded (the backend then uses its own GEMM kernel).
    case noBLAS(tried: [String])
    /// A driver API call failed: the call, the CUresult name and its message.
    case driver(call: String, code: Int32, name: String)
    /// NVRTC rejected a kernel program (its log included).
    case compilation(program: String, arch: String, log: String)
    /// A cuBLAS call failed.
    case blas(call: String, status: Int32)
    /// A kernel was called with sizes it cannot handle.
    case invalidLaunch(kernel: String, reason: String)
    /// `--device` value not understood.
    case unknownDevice(String)
    /// A cached kernel binary was unreadable or did not match its key (it is recompiled; this surfaces only
    /// when no compiler is available to replace it).
    case corruptCacheEntry(path: String, reason: String)

    public var description: String {
        switch self {
        case let .noDriver(tried): return "no CUDA driver found: " + (tried.isEmpty ? "nothing tried" : tried.joined(separator: "; "))
        case let .noDevice(driver, detail): return "no CUDA device: \(driver) \(detail)"
        case let .noCompiler(tried): return "no NVRTC found (install it with scripts/setup.sh or set LORAKIT_NVRTC_PATH): " + tried.joined(separator: "; ")
        case let .noBLAS(tried): return "no cuBLAS found (set LORAKIT_CUBLAS_PATH): " + tried.joined(separator: "; ")
        case let .driver(call, code, name): return "CUDA driver call \(call) failed: \(name) (\(code))"
        case let .compilation(program, arch, log): return "NVRTC could not compile \(program) for \(arch):\n\(log)"
        case let .blas(call, status): return "cuBLAS \(call) failed with status \(status)"
        case let .invalidLaunch(kernel, reason): return "CUDA kernel \(kernel): \(reason)"
        case let .unknownDevice(value): return "unknown device '\(value)': expected cpu, cuda or auto"
        case let .corruptCacheEntry(path, reason): return "CUDA kernel cache entry \(path) is unusable: \(reason)"
        }
    }
}
