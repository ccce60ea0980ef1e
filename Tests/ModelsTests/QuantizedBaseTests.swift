// AdaptedLinear over a quantized base: the same outputs and input gradients as over its dequantised weights,
// through the autograd op and the inference product, for few and many rows; LoRA on it (QLoRA) stays
// quantized; merging dequantises first.
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import TestSupport

/// Q4_1 blocks for a dense matrix [rows, columns] (columns a multiple of 32): per block d = (max − min)/15,
/// m = min, q = round((x − m)/d), scales stored as f16.
func quantizeQ4_1(_ w: Tensor) throws -> QuantizedMatrix {
    let (rows, columns) = (w.shape[0], w.shape[1])
    var bytes: [UInt8] = []
    for r in 0..<rows {
        for b in 0..<(columns / 32) {
            let x = (0..<32).map { w[r, b * 32 + $0] }
            let lo = x.min()!, hi = x.max()!
            let d = Float16((hi - lo) / 15), m = Float16(lo)
            for v in [d.bitPattern, m.bitPattern] { bytes += [UInt8(v & 0xFF), UInt8(v >> 8)] }
            let q = x.map { v -> UInt8 in Float(d) == 0 ? 0 : UInt8(max(0, min(15, ((v - Float(m)) / Float(d)).rounded()))) }
            for j in 0..<16 { bytes.append(q[j] | q[j + 16] << 4) }
        }
    }
    return try QuantizedMatrix(name: "test.q4_1", type: .q4_1, rows: rows, columns: columns, bytes: bytes)
}

final class QuantizedBaseTests: XCTestCase {
    func makeLayers(rows: Int = 48, columns: Int = 64, seed: UInt64 = 1) throws -> (quantized: AdaptedLinear, dense: AdaptedLinear) {
        var rng = RandomGenerator(seed: seed)
        let q = try quantizeQ4_1(rng.normal([rows, columns]))
        let bias = rng.normal([rows])
        return (try AdaptedLinear(path: "proj", quantizedWeight: q, bias: Variable(bias)),
                AdaptedLinear(path: "proj", weight: Variable(q.dequantized()), bias: Variable(bias)))
    }

    func testForwardAndInputGradientMatchDequantisedWeights() throws {
        let (quantized, dense) = try makeLayers()
        var rng = RandomGenerator(seed: 2)
        for rows in [1, 5, 40] {   // block kernels below 8 rows, dequantised tiles + BLAS above
            let x = rng.normal([rows, 64])
            let xq = Variable(x, requiresGrad: true), xd = Variable(x, requiresGrad: true)
            let yq = quantized.forward(xq, rng: &rng, training: true), yd = dense.forward(xd, rng: &rng, training: true)
            XCTAssertLessThan(maxAbsDifference(yq.value, yd.value), 1e-4, "rows \(rows)")
            let seed = rng.normal(yq.shape)
            yq.backward(seed: seed); yd.backward(seed: seed)
            XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(xq.grad), try XCTUnwrap(xd.grad)), 1e-4, "rows \(rows)")
            // The inference product agrees too.
            var out = [Float](repeating: 0, count: rows * 48)
            x.withUnsafeBufferPointer { quantized.apply(x: $0.baseAddress!, rows: rows, out: &out) }
            XCTAssertLessThan(maxAbsDifference(Tensor(out, shape: [rows, 48]), yd.value), 1e-4, "rows \(rows)")
        }
        XCTAssertTrue(quantized.isQuantized)
    }

    /// QLoRA: LoRA on a quantized base keeps it quantized; adapter gradients equal those over the dense base.
    func testLoRAOnQuantizedBaseTrainsLikeDense() throws {
        final class OneLayer: AdaptableModel {
            let layer: AdaptedLinear
            init(_ l: AdaptedLinear) { layer = l }
            var adaptedLinears: [AdaptedLinear] { [layer] }
        }
        let (quantized, dense) = try makeLayers()
        var config = LoRAConfig(r: 4, loraAlpha: 8, targetModules: .names(["proj"]))
        config.initialization = .random  // B ≠ 0, so both A and B get gradients
        for layer in [quantized, dense] {
            var rng = RandomGenerator(seed: 9)
            try OneLayer(layer).addLoRA(config, rng: &rng)
        }
        XCTAssertTrue(quantized.isQuantized)
        var rng = RandomGenerator(seed: 3)
        let x = rng.normal([12, 64])
        let lq = mean(quantized.forward(Variable(x), rng: &rng, training: true))
        let ld = mean(dense.forward(Variable(x), rng: &rng, training: true))
        lq.backward(); ld.backward()
        for (pq, pd) in zip(OneLayer(quantized).adapterParameters("default"), OneLayer(dense).adapterParameters("default")) {
            XCTAssertLessThan(maxAbsDifference(try XCTUnwrap(pq.1.grad), try XCTUnwrap(pd.1.grad)), 1e-5, pq.0)
        }
        // Merging dequantises (with a warning) and keeps the adapted output.
        var warnings: [String] = []
        let saved = PEFTDiagnostics.warn
        PEFTDiagnostics.warn = { warnings.append($0) }
        defer { PEFTDiagnostics.warn = saved }
        let before = quantized.forward(Variable(x), rng: &rng, training: false).value
        try quantized.merge()
        XCTAssertFalse(quantized.isQuantized)
        XCTAssertTrue(warnings.contains { $0.contains("dequantizes") }, "\(warnings)")
        XCTAssertLessThan(maxAbsDifference(quantized.forward(Variable(x), rng: &rng, training: false).value, before), 1e-4)
    }
}
