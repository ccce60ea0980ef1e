// Matrices with known structure for the LinearAlgebra tests, and a minimal F32 safetensors reader for fixtures.
import Foundation
import XCTest
import TensorCore
import LinearAlgebra

enum TestMatrices {
    /// M = Q₁·diag(σ)·Q₂ᵀ [m, n] with Q₁ [m, k], Q₂ [n, k] orthonormal (QR of Gaussians): singular values exactly σ.
    static func planted(rows m: Int, columns n: Int, singularValues sigma: [Float], rng: inout RandomGenerator) throws -> Tensor {
        let k = sigma.count
        let left = try qr(rng.normal([m, k])).q, right = try qr(rng.normal([n, k])).q
        var scaled = left
        for i in 0..<m { for j in 0..<k { scaled[i, j] *= sigma[j] } }
        return Tensor.matmul(scaled, right, transposeB: true)
    }

    /// max |x| over all elements.
    static func maxAbs(_ t: Tensor) -> Float { t.array.reduce(0) { max($0, abs($1)) } }

    /// Σ_{i,j} (a − b)² in Double.
    static func squaredDistance(_ a: Tensor, _ b: Tensor) -> Double {
        zip(a.array, b.array).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
    }

    /// Column j of a 2-D tensor as an array.
    static func column(_ t: Tensor, _ j: Int) -> [Float] { (0..<t.shape[0]).map { t[$0, j] } }
}

/// Reads the F32 tensors of a safetensors file (8-byte little-endian header length, JSON header, raw data).
enum SafetensorsFixture {
    static func load(_ url: URL) throws -> [String: Tensor] {
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as? [String: Any])
        var tensors: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            guard let info = entry as? [String: Any], info["dtype"] as? String == "F32",
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int] else { continue }
            let bytes = data.subdata(in: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
            let values = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
            tensors[name] = try Tensor(validating: values, shape: shape)
        }
        return tensors
    }
}
