// Where the CUDA libraries are looked for, and the dlopen loop that records every failed attempt.
//
// Order for each library: the user's override (LORAKIT_CUDA_PATH / LORAKIT_NVRTC_PATH / LORAKIT_CUBLAS_PATH,
// a file or a directory), the dynamic loader's own search (sonames, LD_LIBRARY_PATH, ldconfig), the CUDA
// toolkit's usual directories, LoRAKit's NVRTC cache installed by scripts/setup.sh (`.cache/nvidia-cuda-nvrtc`
// next to the checkout, found from the working directory and from the executable), and the `nvidia/*/lib`
// folders of pip wheels in Python site-packages (a machine with PyTorch has NVRTC and cuBLAS there).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Every failed attempt of a library search, "path: reason".
struct LibrarySearchFailure: Error { let tried: [String] }

/// One dlopen'ed library: its handle and the path that worked.
public struct SharedLibrary: @unchecked Sendable {
    public let path: String
    let handle: UnsafeMutableRawPointer

    /// The symbol `name` as a C function pointer of type `T`, or nil.
    func symbol<T>(_ name: String, as _: T.Type) -> T? {
        dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
    }

    /// Opens the first candidate that loads and exports `requiredSymbol`; otherwise returns every attempt as
    /// "path: reason" for the error message.
    static func open(_ candidates: [String], requiredSymbol: String) -> Result<SharedLibrary, LibrarySearchFailure> {
        var tried: [String] = []
        var seen = Set<String>()
        for path in candidates where seen.insert(path).inserted {
            guard let handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
                let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
                // dlerror repeats the path; keep the message short.
                tried.append(reason.hasPrefix(path) ? reason : "\(path): \(reason)")
                continue
            }
            guard dlsym(handle, requiredSymbol) != nil else {
                tried.append("\(path): no symbol \(requiredSymbol)")
                continue
            }
            return .success(SharedLibrary(path: path, handle: handle))
        }
        return .failure(LibrarySearchFailure(tried: tried))
    }
}

/// Candidate paths for each library, in search order.
public enum CUDALibrarySearch {
    /// `environment` is a parameter so tests can pin it.
    public static func driverCandidates(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        override(environment["LORAKIT_CUDA_PATH"], pattern: "libcuda.so*") + [
            "libcuda.so.1",
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib/aarch64-linux-gnu/libcuda.so.1",
            "/usr/lib64/libcuda.so.1", "/usr/local/cuda/compat/libcuda.so.1", "/usr/lib/wsl/lib/libcuda.so.1",
        ]
    }

    public static func nvrtcCandidates(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        let cacheDirs = checkoutCacheRoots(environment: environment).map { "\($0)/nvidia-cuda-nvrtc/nvidia/cuda_nvrtc/lib" }
        return override(environment["LORAKIT_NVRTC_PATH"], pattern: "libnvrtc.so*")
            + cacheDirs.flatMap { matching("\($0)/libnvrtc.so*") }
            + ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]
            + matching("/usr/local/cuda/lib64/libnvrtc.so*") + matching("/usr/local/cuda-*/lib64/libnvrtc.so*")
            + sitePackages(environment: environment).flatMap { matching("\($0)/nvidia/cuda_nvrtc/lib/libnvrtc.so*") + matching("\($0)/nvidia/cu13/lib/libnvrtc.so*") }
    }

    public static func cublasCandidates(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        override(environment["LORAKIT_CUBLAS_PATH"], pattern: "libcublas.so*")
            + ["libcublas.so.13", "libcublas.so.12", "libcublas.so"]
            + matching("/usr/local/cuda/lib64/libcublas.so*") + matching("/usr/local/cuda-*/lib64/libcublas.so*")
            + sitePackages(environment: environment).flatMap { matching("\($0)/nvidia/cublas/lib/libcublas.so*") + matching("\($0)/nvidia/cu13/lib/libcublas.so*") }
    }

    /// Directories that may hold LoRAKit's `.cache` (setup.sh installs NVRTC there): LORAKIT_CACHE_ROOT, the
    /// working directory and the checkout above a `.build/<config>/lorakit` executable.
    static func checkoutCacheRoots(environment: [String: String]) -> [String] {
        var roots: [String] = []
        if let r = environment["LORAKIT_CACHE_ROOT"] { roots.append(r) }
        roots.append(FileManager.default.currentDirectoryPath + "/.cache")
        let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {  // .build/x86_64-unknown-linux-gnu/release/lorakit → checkout
            roots.append(dir.path + "/.cache")
            dir = dir.deletingLastPathComponent()
        }
        return roots
    }

    /// Python site-packages directories (system, user, pyenv, virtualenv), for pip's nvidia wheels.
    static func sitePackages(environment: [String: String]) -> [String] {
        var patterns = ["/usr/lib/python3*/dist-packages", "/usr/local/lib/python3*/dist-packages",
                        "/usr/local/lib/python3*/site-packages", "/opt/conda/lib/python3*/site-packages"]
        if let home = environment["HOME"] {
            patterns += ["\(home)/.local/lib/python3*/site-packages", "\(home)/.pyenv/versions/*/lib/python3*/site-packages"]
        }
        if let venv = environment["VIRTUAL_ENV"] { patterns.append("\(venv)/lib/python3*/site-packages") }
        if let conda = environment["CONDA_PREFIX"] { patterns.append("\(conda)/lib/python3*/site-packages") }
        return patterns.flatMap(matching)
    }

    /// A user override: a file is used as is; a directory is searched for `pattern`.
    static func override(_ value: String?, pattern: String) -> [String] {
        guard let value, !value.isEmpty else { return [] }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: value, isDirectory: &isDir), isDir.boolValue {
            let found = matching("\(value)/\(pattern)")
            return found.isEmpty ? ["\(value)/\(pattern.replacingOccurrences(of: "*", with: ""))"] : found
        }
        return [value]
    }

    /// Paths matching a shell pattern, newest soname first; NVRTC's builtins/alt variants are skipped.
    static func matching(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return [] }
        var paths: [String] = []
        for i in 0..<Int(result.gl_pathc) {
            if let p = result.gl_pathv[i] { paths.append(String(cString: p)) }
        }
        return paths.filter { !$0.contains("builtins") && !$0.contains(".alt.") }.sorted(by: >)
    }
}
