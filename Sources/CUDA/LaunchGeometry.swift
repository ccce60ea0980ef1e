// Grid, block and shared-memory sizes of every kernel, computed on the host from the problem shape and
// validated before launch (so a bad shape is a typed error, not a silent out-of-bounds write on the GPU).
// Pure arithmetic: unit-tested on CPU. The numbers mirror the constants in the kernel sources.

/// One kernel launch configuration.
public struct LaunchGeometry: Equatable, Sendable {
    public var grid: (x: Int, y: Int, z: Int)
    public var block: Int
    public var sharedBytes: Int

    public static func == (a: LaunchGeometry, b: LaunchGeometry) -> Bool {
        a.grid == b.grid && a.block == b.block && a.sharedBytes == b.sharedBytes
    }

    static let maxGridY = 65_535, maxGridX = Int(Int32.max)

    /// Grid-stride element-wise kernels: 256 threads, enough blocks to fill `multiprocessors` 8 times over.
    public static func elementwise(count n: Int, multiprocessors: Int = 132) -> LaunchGeometry {
        let blocks = max(1, min((n + 255) / 256, max(multiprocessors, 1) * 8))
        return LaunchGeometry(grid: (blocks, 1, 1), block: 256, sharedBytes: 0)
    }

    /// One block per row (RMSNorm, embedding rows, cross-entropy rows): threads cover `dim` with ≥ 4 elements
    /// per thread, a multiple of 32 between 32 and `maxThreads`.
    public static func rows(_ rows: Int, dim: Int, maxThreads: Int = 1024) throws -> LaunchGeometry {
        guard rows >= 0, dim > 0 else { throw CUDAError.invalidLaunch(kernel: "row kernel", reason: "rows \(rows), dim \(dim)") }
        guard rows <= maxGridX else { throw CUDAError.invalidLaunch(kernel: "row kernel", reason: "\(rows) rows exceed the grid limit") }
        let wanted = (dim + 3) / 4
        let threads = min(maxThreads, max(32, (wanted + 31) / 32 * 32))
        return LaunchGeometry(grid: (max(rows, 1), 1, 1), block: threads, sharedBytes: 0)
    }

    /// Warp-per-row kernels (quantized matvec, attention dsum): 8 warps a block.
    public static func warpPerRow(_ rows: Int) -> LaunchGeometry {
        LaunchGeometry(grid: (max(1, (rows + 7) / 8), 1, 1), block: 256, sharedBytes: 0)
    }

    /// Fallback GEMM: 64×64 output tiles, 256 threads, batch on z.
    public static func gemm(m: Int, n: Int, batch: Int) throws -> LaunchGeometry {
        guard m > 0, n > 0, batch > 0 else { throw CUDAError.invalidLaunch(kernel: "gemm", reason: "M \(m), N \(n), batch \(batch)") }
        let g = LaunchGeometry(grid: ((n + 63) / 64, (m + 63) / 64, batch), block: 256, sharedBytes: 0)
        guard g.grid.y <= maxGridY, g.grid.z <= maxGridY else { throw CUDAError.invalidLaunch(kernel: "gemm", reason: "grid \(g.grid) too large") }
        return g
    }

    /// RMSNorm weight gradient: columns over x, chunks of `rowsPerBlock` rows over y.
    public static func rmsNormWeightGradient(rows: Int, dim: Int, rowsPerBlock: Int = 256) -> LaunchGeometry {
        LaunchGeometry(grid: ((dim + 255) / 256, min(maxGridY, max(1, (rows + rowsPerBlock - 1) / rowsPerBlock)), 1), block: 256, sharedBytes: 0)
    }
}

/// Shape of one attention call on the device (q [B, T, Hq, D] with token strides; k, v [B, S, Hkv, D]).
public struct DeviceAttentionShape: Equatable, Sendable {
    public var batch: Int, queryHeads: Int, kvHeads: Int, queryLength: Int, keyLength: Int, headDim: Int
    public var causal: Bool

    public init(batch: Int, queryHeads: Int, kvHeads: Int, queryLength: Int, keyLength: Int, headDim: Int, causal: Bool) {
        self.batch = batch; self.queryHeads = queryHeads; self.kvHeads = kvHeads
        self.queryLength = queryLength; self.keyLength = keyLength; self.headDim = headDim; self.causal = causal
    }

    /// Kernel constants (AttentionKernelSource): 4 warps × 4 rows per block, tiles of 32, D ≤ 128.
    static let rowsPerBlock = 16, tile = 32, warps = 4, maxHeadDim = 128

    public func validate(maxSharedBytes: Int = 227 * 1024) throws {
        let k = "attention"
        guard batch > 0, queryHeads > 0, kvHeads > 0, queryLength > 0, keyLength > 0, headDim > 0 else {
            throw CUDAError.invalidLaunch(kernel: k, reason: "sizes must be positive: \(self)")
        }
        guard queryHeads % kvHeads == 0 else { throw CUDAError.invalidLaunch(kernel: k, reason: "query heads \(queryHeads) not a multiple of kv heads \(kvHeads)") }
        guard headDim <= Self.maxHeadDim else { throw CUDAError.invalidLaunch(kernel: k, reason: "head dim \(headDim) > \(Self.maxHeadDim)") }
        guard !causal || keyLength >= queryLength else { throw CUDAError.invalidLaunch(kernel: k, reason: "causal needs S ≥ T, got S \(keyLength) < T \(queryLength)") }
        guard queryHeads <= LaunchGeometry.maxGridY, batch <= LaunchGeometry.maxGridY else {
            throw CUDAError.invalidLaunch(kernel: k, reason: "heads \(queryHeads) or batch \(batch) exceed the grid limit")
        }
        let worst = max(forward.sharedBytes, backwardQuery.sharedBytes, backwardKeyValue.sharedBytes)
        guard worst <= maxSharedBytes else { throw CUDAError.invalidLaunch(kernel: k, reason: "needs \(worst) B shared memory, device allows \(maxSharedBytes)") }
    }

    /// attention_fwd: (16·D + 32·(D+1) + 32·D + 128) floats.
    public var forward: LaunchGeometry {
        let D = headDim
        return LaunchGeometry(grid: ((queryLength + 15) / 16, queryHeads, batch), block: 128,
                              sharedBytes: 4 * (16 * D + 32 * (D + 1) + 32 * D + 128))
    }
    /// attention_bwd_dq: (2·16·D + 2·32·(D+1) + 128) floats.
    public var backwardQuery: LaunchGeometry {
        let D = headDim
        return LaunchGeometry(grid: ((queryLength + 15) / 16, queryHeads, batch), block: 128,
                              sharedBytes: 4 * (2 * 16 * D + 2 * 32 * (D + 1) + 128))
    }
    /// attention_bwd_dkdv: (2·16·D + 2·32·(D+1) + 64 + 256) floats.
    public var backwardKeyValue: LaunchGeometry {
        let D = headDim
        return LaunchGeometry(grid: ((keyLength + 15) / 16, kvHeads, batch), block: 128,
                              sharedBytes: 4 * (2 * 16 * D + 2 * 32 * (D + 1) + 64 + 256))
    }
}
