// The one place LoRAKit touches BLAS and LAPACK. Everything else calls `BLAS.gemm`, `LAPACK.*`.
//
// Linux: OpenBLAS is loaded at run time with dlopen rather than linked, because OpenBLAS reads
// OPENBLAS_CORETYPE once, when the library loads. Debian's 0.3.21 mistakes AMD Zen 4/5 for Haswell
// (AVX2 kernels, ~220 GFLOP/s on 2 cores); when the CPU has AVX-512 and the user has not chosen a core
// type we select SkylakeX (~430 GFLOP/s) *before* loading. Users get the fast kernels without knowing.
// Apple platforms: Accelerate, linked directly.
import Foundation
#if canImport(Accelerate)
import Accelerate
#endif

public enum Transpose: Sendable { case none, transposed }

/// Loaded BLAS/LAPACK entry points (C and Fortran ABI, 32-bit integers as Debian's OpenBLAS uses).
final class BLASLibrary: @unchecked Sendable {
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float,
                                      UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32, Float,
                                      UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SGEMV = @convention(c) (Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    typealias SetThreads = @convention(c) (Int32) -> Void
    typealias CoreName = @convention(c) () -> UnsafeMutablePointer<CChar>?
    // Fortran LAPACK: every argument by pointer, hidden string lengths appended.
    typealias SGESDD = @convention(c) (UnsafePointer<CChar>, UnsafePointer<Int32>, UnsafePointer<Int32>,
                                       UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafeMutablePointer<Float>,
                                       UnsafeMutablePointer<Float>?, UnsafePointer<Int32>, UnsafeMutablePointer<Float>?,
                                       UnsafePointer<Int32>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>,
                                       UnsafeMutablePointer<Int32>, UnsafeMutablePointer<Int32>, Int) -> Void
    typealias SGEQRF = @convention(c) (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafeMutablePointer<Float>,
                                       UnsafePointer<Int32>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                                       UnsafePointer<Int32>, UnsafeMutablePointer<Int32>) -> Void
    typealias SORGQR = @convention(c) (UnsafePointer<Int32>, UnsafePointer<Int32>, UnsafePointer<Int32>,
                                       UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafePointer<Float>,
                                       UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafeMutablePointer<Int32>) -> Void
    // sgesvd: the slower QR-iteration SVD, used when sgesdd's divide and conquer does not converge.
    typealias SGESVD = @convention(c) (UnsafePointer<CChar>, UnsafePointer<CChar>, UnsafePointer<Int32>, UnsafePointer<Int32>,
                                       UnsafeMutablePointer<Float>, UnsafePointer<Int32>, UnsafeMutablePointer<Float>,
                                       UnsafeMutablePointer<Float>?, UnsafePointer<Int32>, UnsafeMutablePointer<Float>?,
                                       UnsafePointer<Int32>, UnsafeMutablePointer<Float>, UnsafePointer<Int32>,
                                       UnsafeMutablePointer<Int32>, Int, Int) -> Void

    let sgemm: SGEMM
    let sgemv: SGEMV
    let sgesdd: SGESDD
    let sgeqrf: SGEQRF
    let sorgqr: SORGQR
    let sgesvd: SGESVD
    let setThreads: SetThreads?
    let coreName: CoreName?
    let path: String

    init(sgemm: SGEMM, sgemv: SGEMV, sgesdd: SGESDD, sgeqrf: SGEQRF, sorgqr: SORGQR, sgesvd: SGESVD,
         setThreads: SetThreads?, coreName: CoreName?, path: String) {
        self.sgemm = sgemm; self.sgemv = sgemv; self.sgesdd = sgesdd; self.sgeqrf = sgeqrf; self.sorgqr = sorgqr
        self.sgesvd = sgesvd
        self.setThreads = setThreads; self.coreName = coreName; self.path = path
    }

    static let shared: Result<BLASLibrary, TensorError> = load()

    static func load() -> Result<BLASLibrary, TensorError> {
        #if canImport(Accelerate)
        return .failure(.backendUnavailable("Accelerate is called directly on Apple platforms"))
        #else
        chooseCoreTypeBeforeLoading()
        let candidates = ProcessInfo.processInfo.environment["LORAKIT_BLAS"].map { [$0] } ?? [
            "libopenblas.so.0", "libopenblas.so",
            "/usr/lib/x86_64-linux-gnu/libopenblas.so.0", "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
        ]
        var errors: [String] = []
        for path in candidates {
            guard let handle = dlopen(path, RTLD_NOW | RTLD_GLOBAL) else {
                errors.append(String(cString: dlerror())); continue
            }
            func sym<T>(_ name: String, _: T.Type) -> T? {
                dlsym(handle, name).map { unsafeBitCast($0, to: T.self) }
            }
            guard let gemm = sym("cblas_sgemm", SGEMM.self), let gemv = sym("cblas_sgemv", SGEMV.self),
                  let gesdd = sym("sgesdd_", SGESDD.self), let geqrf = sym("sgeqrf_", SGEQRF.self),
                  let orgqr = sym("sorgqr_", SORGQR.self), let gesvd = sym("sgesvd_", SGESVD.self) else {
                errors.append("\(path): missing cblas_sgemm/sgesdd_/sgeqrf_/sorgqr_/sgesvd_"); continue
            }
            let lib = BLASLibrary(sgemm: gemm, sgemv: gemv, sgesdd: gesdd, sgeqrf: geqrf, sorgqr: orgqr, sgesvd: gesvd,
                                  setThreads: sym("openblas_set_num_threads", SetThreads.self),
                                  coreName: sym("openblas_get_corename", CoreName.self), path: path)
            lib.setThreads?(Int32(Parallel.threadCount))
            return .success(lib)
        }
        return .failure(.backendUnavailable("could not load OpenBLAS (install libopenblas0-pthread): " + errors.joined(separator: "; ")))
        #endif
    }

    /// Selects OpenBLAS' SkylakeX kernels on CPUs with AVX-512 unless the user chose a core type.
    static func chooseCoreTypeBeforeLoading() {
        guard getenv("OPENBLAS_CORETYPE") == nil, CPUFeatures.hasAVX512 else { return }
        setenv("OPENBLAS_CORETYPE", "SkylakeX", 0)
    }
}

/// CPU feature probe (Linux: /proc/cpuinfo flags).
public enum CPUFeatures {
    public static let flags: Set<String> = {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
        return Set(line.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
    }()
    /// SkylakeX kernels need F, CD, BW, DQ and VL.
    public static var hasAVX512: Bool {
        ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }
}

public enum BLAS {
    static func library() throws -> BLASLibrary {
        switch BLASLibrary.shared {
        case .success(let lib): return lib
        case .failure(let error): throw error
        }
    }

    /// Loads the backend (if not yet loaded) and reports which kernel family it runs.
    public static func describe() -> (library: String, kernel: String, threads: Int) {
        #if canImport(Accelerate)
        return ("Accelerate", "Accelerate", Parallel.threadCount)
        #else
        guard let lib = try? library() else { return ("unavailable", "none", 0) }
        let core = lib.coreName?().map { String(cString: $0).trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return (lib.path, core, Parallel.threadCount)
        #endif
    }

    /// C ← alpha·op(A)·op(B) + beta·C, all row-major. op(A) is [m, k], op(B) is [k, n], C is [m, n].
    /// `lda`, `ldb`, `ldc` are row strides of the matrices as stored.
    public static func gemm(_ transA: Transpose, _ transB: Transpose, m: Int, n: Int, k: Int,
                            alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                            b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        if k == 0 {  // BLAS may skip the beta scaling when k == 0; do it ourselves.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        let ta: Int32 = transA == .none ? 111 : 112, tb: Int32 = transB == .none ? 111 : 112
        #if canImport(Accelerate)
        cblas_sgemm(CblasRowMajor, transA == .none ? CblasNoTrans : CblasTrans, transB == .none ? CblasNoTrans : CblasTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        _ = (ta, tb)
        #else
        // OpenBLAS clears C for beta = 0 with a single-threaded loop before its threads start (4.6% of a training
        // step in a profile); memset is faster, and beta = 1 then skips that pass. Same result: C's old values,
        // NaNs included, are never read.
        var beta = beta
        if beta == 0 {
            if ldc == n { c.update(repeating: 0, count: m * n) } else { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            beta = 1
        }
        // The backend is checked once at start-up by `BLAS.ensureAvailable()`; a failure here is a setup bug.
        let lib = try! library()
        lib.sgemm(101, ta, tb, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
        #endif
    }

    /// Throws a clear error if no BLAS can be loaded. Call once before numeric work in user-facing entry points.
    public static func ensureAvailable() throws {
        #if !canImport(Accelerate)
        _ = try library()
        #endif
        _ = allocatorTuned
    }

    /// glibc's malloc raises its mmap threshold as large blocks are freed, after which multi-megabyte activations
    /// come from the heap and fragment it: training's peak RSS measured 2.30 GB that way against 1.77 GB with
    /// a fixed 1 MiB threshold (large tensors mapped and unmapped whole). Set once, where numeric work starts.
    static let allocatorTuned: Bool = {
        #if os(Linux)
        // mallopt is in <malloc.h>, which Glibc's Swift module does not export; M_MMAP_THRESHOLD is −3.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return false }
        return unsafeBitCast(symbol, to: Mallopt.self)(-3, Int32(BufferPool.minimumBytes)) == 1
        #else
        return false
        #endif
    }()
}
