// cuBLAS, loaded at run time, for the GEMMs of a step: bf16 (or fp32) inputs, fp32 accumulation, strided
// batched. libcublasLt is opened first (RTLD_GLOBAL) because libcublas needs it and a pip wheel's copy is not on
// the loader's path. Everything is row-major on LoRAKit's side; `gemm` maps it onto cuBLAS's column-major API.
import Foundation

/// cudaDataType values.
public enum CUDADataType: Int32, Sendable {
    case float32 = 0
    case bfloat16 = 14
    public var byteSize: Int { self == .float32 ? 4 : 2 }
}

final class CuBLASLibrary: @unchecked Sendable {
    typealias Create = @convention(c) (UnsafeMutablePointer<OpaquePointer?>) -> Int32
    typealias Destroy = @convention(c) (OpaquePointer?) -> Int32
    typealias SetStream = @convention(c) (OpaquePointer?, OpaquePointer?) -> Int32
    typealias GetVersion = @convention(c) (OpaquePointer?, UnsafeMutablePointer<Int32>) -> Int32
    typealias GemmStridedBatchedEx = @convention(c) (OpaquePointer?, Int32, Int32, Int32, Int32, Int32,
        UnsafeRawPointer, UnsafeRawPointer?, Int32, Int32, Int64,
        UnsafeRawPointer?, Int32, Int32, Int64,
        UnsafeRawPointer, UnsafeMutableRawPointer?, Int32, Int32, Int64,
        Int32, Int32, Int32) -> Int32

    let path: String
    let create: Create, destroy: Destroy, setStream: SetStream, getVersion: GetVersion?
    let gemmStridedBatchedEx: GemmStridedBatchedEx

    private init?(_ lib: SharedLibrary) {
        guard let c = lib.symbol("cublasCreate_v2", as: Create.self), let d = lib.symbol("cublasDestroy_v2", as: Destroy.self),
              let s = lib.symbol("cublasSetStream_v2", as: SetStream.self),
              let g = lib.symbol("cublasGemmStridedBatchedEx", as: GemmStridedBatchedEx.self) else { return nil }
        path = lib.path; create = c; destroy = d; setStream = s; gemmStridedBatchedEx = g
        getVersion = lib.symbol("cublasGetVersion_v2", as: GetVersion.self)
    }

    static func load(candidates: [String] = CUDALibrarySearch.cublasCandidates()) -> Result<CuBLASLibrary, CUDAError> {
        // libcublasLt from the same directory as each libcublas candidate, when present.
        for candidate in candidates where candidate.contains("/") {
            let lt = candidate.replacingOccurrences(of: "libcublas.so", with: "libcublasLt.so")
            if FileManager.default.fileExists(atPath: lt) { _ = SharedLibrary.open([lt], requiredSymbol: "cublasLtCreate") }
        }
        switch SharedLibrary.open(candidates, requiredSymbol: "cublasGemmStridedBatchedEx") {
        case .failure(let f): return .failure(.noBLAS(tried: f.tried))
        case .success(let lib):
            guard let blas = CuBLASLibrary(lib) else { return .failure(.noBLAS(tried: ["\(lib.path): missing cuBLAS entry points"])) }
            return .success(blas)
        }
    }

    static let shared: Result<CuBLASLibrary, CUDAError> = load()
}

/// cuBLAS arguments for a row-major C[M, N] = alpha · op(A) · op(B) + beta · C: the column-major view of a
/// row-major matrix is its transpose, so cuBLAS computes Cᵀ = op(B)ᵀ · op(A)ᵀ with A and B swapped.
/// Pure arithmetic, unit-tested on CPU.
public struct ColumnMajorGEMM: Equatable, Sendable {
    public var transA: Int32, transB: Int32   // CUBLAS_OP_N = 0, CUBLAS_OP_T = 1
    public var m: Int32, n: Int32, k: Int32
    public var firstIsB: Bool                 // cuBLAS's "A" is LoRAKit's B
    public var lda: Int32, ldb: Int32, ldc: Int32

    public init(rowMajorM M: Int, n N: Int, k K: Int, transposeA: Bool, transposeB: Bool, lda: Int, ldb: Int, ldc: Int) {
        transA = transposeB ? 1 : 0; transB = transposeA ? 1 : 0
        m = Int32(N); n = Int32(M); k = Int32(K)
        firstIsB = true
        self.lda = Int32(ldb); self.ldb = Int32(lda); self.ldc = Int32(ldc)
    }
}
