// y = x·Wᵀ + b over a frozen ggml-quantized W, as an autograd op (QLoRA-style training) and as a plain
// buffer product (inference). W is never expanded as a whole and never kept in Float32 between calls:
//   few rows (decode): the block kernels of `QuantizedMatrix` read W directly;
//   many rows (prefill, training): W is dequantised tile by tile into a pooled buffer and multiplied
//   with BLAS, so each weight element is converted once per call rather than once per row.
// Backward computes dX = dY·W only (the base is frozen), dequantising W the same way.
import Foundation
import TensorCore
import Autograd
import Formats

/// y = x·Wᵀ + b with W quantized and frozen. x: [..., in], weight: [out, in], bias: [out] → y: [..., out].
/// Backward: dX = dY·W (when x needs it) and db = Σ_rows dY (when the bias is trainable); W gets nothing.
public func quantizedLinear(_ x: Variable, weight: QuantizedMatrix, bias: Variable? = nil) -> Variable {
    let xv = x.value
    precondition(xv.rank >= 1 && xv.dim(-1) == weight.columns,
                 "quantizedLinear: input \(xv.shape) does not match weight '\(weight.name)' \(weight.shape) ([out, in])")
    if let bias { precondition(bias.value.count == weight.rows, "quantizedLinear: bias \(bias.value.shape) does not match \(weight.rows) outputs") }
    let outF = weight.rows, inF = weight.columns
    let rows = xv.count / max(inF, 1)
    var y = Tensor(zeros: Array(xv.shape.dropLast()) + [outF])
    y.withUnsafeMutableBufferPointer { py in
        xv.withUnsafeBufferPointer { px in
            QuantizedProducts.forward(weight, x: px.baseAddress!, rows: rows, out: py.baseAddress!)
        }
        if let b = bias?.value { QuantizedProducts.addBias(b, rows: rows, out: py.baseAddress!) }
    }
    let inputs = bias.map { [x, $0] } ?? [x]
    let inputShape = xv.shape  // dX needs only the frozen weight: the input is not kept
    return Variable(y, inputs: inputs) { [x = x.node, bias = bias?.node] dy in
        if x.requiresGrad {
            var dx = Tensor(zeros: inputShape)
            dx.withUnsafeMutableBufferPointer { pdx in dy.withUnsafeBufferPointer { pdy in
                QuantizedProducts.inputGradient(weight, dOut: pdy.baseAddress!, rows: rows, dx: pdx.baseAddress!)
            } }
            x.accumulate(dx)
        }
        if let bias, bias.requiresGrad { bias.accumulate(dy.reshaped([rows, outF]).sumRows().reshaped(bias.shape)) }
    }
}

/// The buffer-level products behind `quantizedLinear` and `AdaptedLinear`'s inference path.
enum QuantizedProducts {
    /// Row counts below this use the block kernels; at or above, dequantised tiles and BLAS.
    static let gemmRowThreshold = 8
    /// Largest tile of dequantised weights (floats): 16 MiB, so an untied 49152-row head is done in pieces.
    static let maxTileElements = 1 << 22

    /// out [rows, W.rows] = x [rows, W.columns] · Wᵀ (overwrites out).
    static func forward(_ w: QuantizedMatrix, x: UnsafePointer<Float>, rows: Int, out: UnsafeMutablePointer<Float>) {
        guard rows > 0, w.rows > 0 else { return }
        guard w.columns > 0 else { out.update(repeating: 0, count: rows * w.rows); return }
        if rows < gemmRowThreshold {
            if w.hasFusedRowKernel {  // fused row kernels, each weight row read once for all rows of x
                QuantizedMatrix.matvec([w], x: x, batch: rows, outputs: [out])
            } else {
                w.matmul(x: x, batch: rows, out: out)
            }
            return
        }
        forEachTile(w) { r0, n, tile in
            // out[:, r0..<r0+n] = x [rows, in] · tileᵀ [in, n]
            BLAS.gemm(.none, .transposed, m: rows, n: n, k: w.columns, a: x, lda: w.columns,
                      b: tile, ldb: w.columns, c: out + r0, ldc: w.rows)
        }
    }

    /// dx [rows, W.columns] = dOut [rows, W.rows] · W (overwrites dx).
    static func inputGradient(_ w: QuantizedMatrix, dOut: UnsafePointer<Float>, rows: Int, dx: UnsafeMutablePointer<Float>) {
        dx.update(repeating: 0, count: rows * w.columns)
        guard rows > 0, w.rows > 0, w.columns > 0 else { return }
        forEachTile(w) { r0, n, tile in
            // dx += dOut[:, r0..<r0+n] · tile [n, in]
            BLAS.gemm(.none, .none, m: rows, n: w.columns, k: n, a: dOut + r0, lda: w.rows,
                      b: tile, ldb: w.columns, beta: 1, c: dx, ldc: w.columns)
        }
    }

    /// out[r, :] += bias for every row.
    static func addBias(_ bias: Tensor, rows: Int, out: UnsafeMutablePointer<Float>) {
        bias.withUnsafeBufferPointer { pb in
            let n = pb.count
            for r in 0..<rows { let o = out + r * n; for j in 0..<n { o[j] += pb[j] } }
        }
    }

    /// Calls `body(firstRow, rowCount, tile)` with consecutive row tiles of W dequantised to Float32.
    private static func forEachTile(_ w: QuantizedMatrix, _ body: (Int, Int, UnsafePointer<Float>) -> Void) {
        let tileRows = max(1, min(w.rows, maxTileElements / w.columns))
        // From the buffer pool: the tile is reused call after call instead of faulted in afresh each time.
        BufferPool.withScratch(count: tileRows * w.columns) { tile in
            var r0 = 0
            while r0 < w.rows {
                let n = min(tileRows, w.rows - r0)
                w.dequantizeRows(r0..<(r0 + n), into: tile)
                body(r0, n, UnsafePointer(tile))
                r0 += n
            }
        }
    }
}
