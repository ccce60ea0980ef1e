// Row-major wrappers over the few LAPACK routines LoRAKit needs: SVD (sgesdd, sgesvd fallback) and
// Householder QR (sgeqrf + sorgqr). Callers pass and receive row-major tensors and never see lda/lwork.
//
// LAPACK is column-major: a row-major [m, n] buffer, read column-major, is Aᵀ ([n, m]). Factoring that buffer
// as is would work for the SVD (Aᵀ = U'SV'ᵀ gives A = V'SU'ᵀ), but torch.linalg.svd factors A itself and
// the two choose different singular-vector signs (on the PiSSA fixture, A's layout matches torch's signs for
// every square weight; MKL and OpenBLAS still differ on some pairs of wide ones, so never rely on signs).
// So, as for QR (which needs A itself), the input is transposed into a column-major scratch buffer and the
// factors are transposed back: O(m·n) copies next to O(m·n·min(m, n)) work.
// Every routine is called twice: once with lwork = -1 (workspace query), then with the optimal workspace.
import Foundation
#if canImport(Accelerate)
import Accelerate
#endif

public enum LAPACK {
    /// Thin (`full: false`: U [m,k], Vᵀ [k,n]) or full (U [m,m], Vᵀ [n,n]) SVD A = U·diag(S)·Vᵀ of a row-major
    /// [m, n] matrix, k = min(m, n), S [k] descending. Uses sgesdd, retrying with sgesvd if it does not converge.
    public static func gesdd(_ a: Tensor, full: Bool = false) throws -> (u: Tensor, s: Tensor, vt: Tensor) {
        try svd(a, full: full, divideAndConquer: true)
    }

    /// The same decomposition by sgesvd (QR iteration): slower than `gesdd` but the most robust; `gesdd` falls
    /// back to it when divide and conquer does not converge.
    public static func gesvd(_ a: Tensor, full: Bool = false) throws -> (u: Tensor, s: Tensor, vt: Tensor) {
        try svd(a, full: full, divideAndConquer: false)
    }

    private static func svd(_ a: Tensor, full: Bool, divideAndConquer: Bool) throws -> (u: Tensor, s: Tensor, vt: Tensor) {
        let routine = divideAndConquer ? "sgesdd" : "sgesvd"
        let (m, n) = try matrixShape(a, routine: routine)
        let k = min(m, n)
        let uShape = [m, full ? m : k], vtShape = [full ? n : k, n]
        guard !full || max(m, n) * max(m, n) < Int(Int32.max) else {
            throw TensorError.invalidShape(a.shape, reason: "\(routine): a full basis of \(max(m, n))^2 elements is beyond 32-bit LAPACK")
        }
        if k == 0 {  // Nothing to factor; a full basis of an empty-rank matrix is the identity.
            return (full ? identity(m) : Tensor(zeros: uShape), Tensor(zeros: [0]), full ? identity(n) : Tensor(zeros: vtShape))
        }
        try checkFinite(a, rows: m, columns: n, routine: routine)
        var u = Tensor(zeros: uShape), s = Tensor(zeros: [k]), vt = Tensor(zeros: vtShape)
        try factorSVD(a, rows: m, columns: n, job: full ? .full : .thin, divideAndConquer: divideAndConquer, u: &u, s: &s, vt: &vt)
        return (u, s, vt)
    }

    /// Singular values only (sgesdd with jobz = 'N'), descending, shape [min(m, n)].
    public static func singularValues(_ a: Tensor) throws -> Tensor {
        let (m, n) = try matrixShape(a, routine: "sgesdd")
        var s = Tensor(zeros: [min(m, n)])
        if min(m, n) == 0 { return s }
        try checkFinite(a, rows: m, columns: n, routine: "sgesdd")
        var u = Tensor(zeros: [1]), vt = Tensor(zeros: [1])  // not referenced by LAPACK for jobz = 'N'
        try factorSVD(a, rows: m, columns: n, job: .valuesOnly, divideAndConquer: true, u: &u, s: &s, vt: &vt)
        return s
    }

    /// Reduced QR A = Q·R of a row-major [m, n] matrix by Householder reflections (sgeqrf, then sorgqr to form Q):
    /// Q [m, k] with orthonormal columns, R [k, n] upper triangular, k = min(m, n). Signs are LAPACK's (as torch/numpy).
    public static func qr(_ a: Tensor) throws -> (q: Tensor, r: Tensor) {
        let (m, n) = try matrixShape(a, routine: "sgeqrf")
        let k = min(m, n)
        if k == 0 { return (Tensor(zeros: [m, 0]), Tensor(zeros: [0, n])) }
        try checkFinite(a, rows: m, columns: n, routine: "sgeqrf")
        // Column-major [m, n] copy = row-major [n, m] transpose.
        var packed = [Float](repeating: 0, count: m * n)
        var tau = [Float](repeating: 0, count: k)
        a.withUnsafeBufferPointer { src in
            packed.withUnsafeMutableBufferPointer { dst in transpose(src.baseAddress!, rows: m, columns: n, into: dst.baseAddress!) }
        }
        let (m32, n32, k32) = (Int32(m), Int32(n), Int32(k))
        var r = Tensor(zeros: [k, n]), q = Tensor(zeros: [m, k])
        try packed.withUnsafeMutableBufferPointer { pa in
            try tau.withUnsafeMutableBufferPointer { pt in
                let base = pa.baseAddress!, tau = pt.baseAddress!
                let qrWork = try queryWorkspace(routine: "sgeqrf") { work, lwork in
                    try callGEQRF(m32, n32, base, m32, tau, work, lwork)
                }
                try withWorkspace(qrWork, routine: "sgeqrf") { work, lwork in try callGEQRF(m32, n32, base, m32, tau, work, lwork) }
                // R [k, n]: the upper triangle of the first k rows, before sorgqr overwrites the reflectors.
                r.withUnsafeMutableBufferPointer { pr in
                    for i in 0..<k { for j in i..<n { pr[i * n + j] = base[i + j * m] } }
                }
                let qWork = try queryWorkspace(routine: "sorgqr") { work, lwork in
                    try callORGQR(m32, k32, k32, base, m32, tau, work, lwork)
                }
                try withWorkspace(qWork, routine: "sorgqr") { work, lwork in try callORGQR(m32, k32, k32, base, m32, tau, work, lwork) }
                // Q [m, k]: the first k columns of the column-major buffer.
                q.withUnsafeMutableBufferPointer { pq in transpose(base, rows: k, columns: m, into: pq.baseAddress!) }
            }
        }
        return (q, r)
    }

    // MARK: - SVD driver

    private enum SVDJob { case valuesOnly, thin, full }

    /// Runs sgesdd (or, with `divideAndConquer: false`, sgesvd) on a column-major copy of A (as torch.linalg.svd
    /// does, not on Aᵀ); sgesdd's non-convergence (info > 0) retries with sgesvd.
    /// Fills row-major `u` [m, ucols], `s` [k], `vt` [vtrows, n].
    private static func factorSVD(_ a: Tensor, rows m: Int, columns n: Int, job: SVDJob, divideAndConquer: Bool,
                                  u: inout Tensor, s: inout Tensor, vt: inout Tensor) throws {
        let k = min(m, n), vectors = job != .valuesOnly
        let code = job == .full ? "A" : job == .thin ? "S" : "N"
        let uColumns = job == .full ? m : k, vtRows = job == .full ? n : k
        // Column-major LAPACK outputs: U [m, uColumns] with ldu = m, VT [vtRows, n] with ldvt = vtRows.
        var columnU = [Float](repeating: 0, count: vectors ? m * uColumns : 1)
        var columnVT = [Float](repeating: 0, count: vectors ? vtRows * n : 1)
        let (ldu, ldvt) = (Int32(vectors ? m : 1), Int32(vectors ? vtRows : 1))
        var columnA = [Float](repeating: 0, count: m * n)  // column-major [m, n] = row-major [n, m]
        a.withUnsafeBufferPointer { src in
            columnA.withUnsafeMutableBufferPointer { dst in transpose(src.baseAddress!, rows: m, columns: n, into: dst.baseAddress!) }
        }
        let (m32, n32) = (Int32(m), Int32(n))
        var iwork = [Int32](repeating: 0, count: 8 * k)
        func attempt(divideAndConquer: Bool) throws -> Int32 {
            var scratch = columnA  // LAPACK destroys its input; keep the original for the fallback.
            return try scratch.withUnsafeMutableBufferPointer { pa in
                try s.withUnsafeMutableBufferPointer { ps in
                    try columnU.withUnsafeMutableBufferPointer { pu in
                        try columnVT.withUnsafeMutableBufferPointer { pvt in
                            try iwork.withUnsafeMutableBufferPointer { pi in
                                let call: (UnsafeMutablePointer<Float>, Int32) throws -> Int32 = { work, lwork in
                                    if divideAndConquer {
                                        return try callGESDD(code, m32, n32, pa.baseAddress!, m32, ps.baseAddress!,
                                                             pu.baseAddress!, ldu, pvt.baseAddress!, ldvt, work, lwork, pi.baseAddress!)
                                    }
                                    return try callGESVD(code, code, m32, n32, pa.baseAddress!, m32, ps.baseAddress!,
                                                         pu.baseAddress!, ldu, pvt.baseAddress!, ldvt, work, lwork)
                                }
                                let routine = divideAndConquer ? "sgesdd" : "sgesvd"
                                let size = try queryWorkspace(routine: routine, call)
                                return try withWorkspace(size, routine: routine, allowPositiveInfo: true, call)
                            }
                        }
                    }
                }
            }
        }
        let info = try attempt(divideAndConquer: divideAndConquer)
        if info > 0 && !divideAndConquer { throw TensorError.lapackFailure(routine: "sgesvd", info: Int(info)) }
        if info > 0 {
            let fallbackInfo = try attempt(divideAndConquer: false)
            if fallbackInfo != 0 { throw TensorError.lapackFailure(routine: "sgesvd (after sgesdd info \(info))", info: Int(fallbackInfo)) }
        }
        guard vectors else { return }
        // Column-major U [m, uColumns] is row-major [uColumns, m]; likewise VT [vtRows, n] is row-major [n, vtRows].
        columnU.withUnsafeBufferPointer { src in
            u.withUnsafeMutableBufferPointer { dst in transpose(src.baseAddress!, rows: uColumns, columns: m, into: dst.baseAddress!) }
        }
        columnVT.withUnsafeBufferPointer { src in
            vt.withUnsafeMutableBufferPointer { dst in transpose(src.baseAddress!, rows: n, columns: vtRows, into: dst.baseAddress!) }
        }
    }

    // MARK: - Workspace handling

    /// Calls `body` with lwork = -1 and returns the optimal workspace size LAPACK reports in work[0].
    private static func queryWorkspace(routine: String, _ body: (UnsafeMutablePointer<Float>, Int32) throws -> Int32) throws -> Int {
        var optimal: Float = 0
        let info = try body(&optimal, -1)
        guard info == 0 else { throw TensorError.lapackFailure(routine: routine + " (workspace query)", info: Int(info)) }
        // work[0] is a Float: sizes above 2^24 may be rounded down, so round up generously.
        let size = Int(optimal.nextUp.rounded(.up)) + 1
        guard size < Int(Int32.max) else {
            throw TensorError.invalidArgument(operation: routine, reason: "workspace of \(size) floats exceeds 32-bit LAPACK")
        }
        return max(size, 1)
    }

    /// Allocates the workspace and calls `body`; throws on info < 0 (and info > 0 unless `allowPositiveInfo`).
    @discardableResult
    private static func withWorkspace(_ size: Int, routine: String, allowPositiveInfo: Bool = false,
                                      _ body: (UnsafeMutablePointer<Float>, Int32) throws -> Int32) throws -> Int32 {
        var work = [Float](repeating: 0, count: size)
        let info = try work.withUnsafeMutableBufferPointer { try body($0.baseAddress!, Int32(size)) }
        if info < 0 || (info > 0 && !allowPositiveInfo) { throw TensorError.lapackFailure(routine: routine, info: Int(info)) }
        return info
    }

    // MARK: - Validation and copies

    /// (rows, columns) of a 2-D tensor small enough for 32-bit LAPACK indexing.
    private static func matrixShape(_ a: Tensor, routine: String) throws -> (Int, Int) {
        guard a.rank == 2 else { throw TensorError.invalidShape(a.shape, reason: "\(routine) needs a 2-D matrix") }
        guard a.count < Int(Int32.max) else {
            throw TensorError.invalidShape(a.shape, reason: "\(routine): more than 2^31 elements is beyond 32-bit LAPACK")
        }
        return (a.shape[0], a.shape[1])
    }

    /// LAPACK may loop forever or return garbage on NaN/Inf, so reject them up front.
    private static func checkFinite(_ a: Tensor, rows m: Int, columns n: Int, routine: String) throws {
        let bad = a.withUnsafeBufferPointer { p in p.firstIndex { !$0.isFinite } }
        if let bad { throw TensorError.invalidArgument(operation: routine, reason: "non-finite entry \(a[flat: bad]) at [\(bad / n), \(bad % n)] of a \(m)x\(n) matrix") }
    }

    private static func identity(_ n: Int) -> Tensor {
        var t = Tensor(zeros: [n, n])
        t.withUnsafeMutableBufferPointer { p in for i in 0..<n { p[i * n + i] = 1 } }
        return t
    }

    /// dst [columns, rows] = srcᵀ, src [rows, columns], both row-major; 32x32 tiles keep both sides in cache.
    static func transpose(_ src: UnsafePointer<Float>, rows: Int, columns: Int, into dst: UnsafeMutablePointer<Float>) {
        let tile = 32
        for i0 in stride(from: 0, to: rows, by: tile) {
            for j0 in stride(from: 0, to: columns, by: tile) {
                for i in i0..<min(i0 + tile, rows) {
                    for j in j0..<min(j0 + tile, columns) { dst[j * rows + i] = src[i * columns + j] }
                }
            }
        }
    }

    // MARK: - Raw calls (Fortran ABI: every argument by pointer; OpenBLAS takes hidden string lengths)

    private static func callGESDD(_ jobz: String, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32,
                                  _ s: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>, _ ldu: Int32,
                                  _ vt: UnsafeMutablePointer<Float>, _ ldvt: Int32, _ work: UnsafeMutablePointer<Float>,
                                  _ lwork: Int32, _ iwork: UnsafeMutablePointer<Int32>) throws -> Int32 {
        var jobz = CChar(jobz.utf8.first!), m = m, n = n, lda = lda, ldu = ldu, ldvt = ldvt, lwork = lwork, info: Int32 = 0
        #if canImport(Accelerate)
        sgesdd_(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info)
        #else
        try BLAS.library().sgesdd(&jobz, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1)
        #endif
        return info
    }

    private static func callGESVD(_ jobu: String, _ jobvt: String, _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>,
                                  _ lda: Int32, _ s: UnsafeMutablePointer<Float>, _ u: UnsafeMutablePointer<Float>, _ ldu: Int32,
                                  _ vt: UnsafeMutablePointer<Float>, _ ldvt: Int32, _ work: UnsafeMutablePointer<Float>,
                                  _ lwork: Int32) throws -> Int32 {
        var jobu = CChar(jobu.utf8.first!), jobvt = CChar(jobvt.utf8.first!)
        var m = m, n = n, lda = lda, ldu = ldu, ldvt = ldvt, lwork = lwork, info: Int32 = 0
        #if canImport(Accelerate)
        sgesvd_(&jobu, &jobvt, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, &info)
        #else
        try BLAS.library().sgesvd(&jobu, &jobvt, &m, &n, a, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, &info, 1, 1)
        #endif
        return info
    }

    private static func callGEQRF(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32,
                                  _ tau: UnsafeMutablePointer<Float>, _ work: UnsafeMutablePointer<Float>, _ lwork: Int32) throws -> Int32 {
        var m = m, n = n, lda = lda, lwork = lwork, info: Int32 = 0
        #if canImport(Accelerate)
        sgeqrf_(&m, &n, a, &lda, tau, work, &lwork, &info)
        #else
        try BLAS.library().sgeqrf(&m, &n, a, &lda, tau, work, &lwork, &info)
        #endif
        return info
    }

    private static func callORGQR(_ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Float>, _ lda: Int32,
                                  _ tau: UnsafeMutablePointer<Float>, _ work: UnsafeMutablePointer<Float>, _ lwork: Int32) throws -> Int32 {
        var m = m, n = n, k = k, lda = lda, lwork = lwork, info: Int32 = 0
        #if canImport(Accelerate)
        sorgqr_(&m, &n, &k, a, &lda, tau, work, &lwork, &info)
        #else
        try BLAS.library().sorgqr(&m, &n, &k, a, &lda, tau, work, &lwork, &info)
        #endif
        return info
    }
}
