// Minimal F32-only safetensors reader for optimizer parity fixtures (NNTests cannot depend on Formats).
import Foundation
import TensorCore

enum SafetensorsTestReader {
    /// Every F32 tensor in the file by name.
    static func read(_ url: URL) throws -> [String: Tensor] {
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        var out: [String: Tensor] = [:]
        for (name, entry) in header where name != "__metadata__" {
            let info = entry as! [String: Any]
            guard info["dtype"] as? String == "F32" else { continue }
            let shape = info["shape"] as! [Int], offsets = info["data_offsets"] as! [Int]
            let bytes = data.subdata(in: (8 + headerLength + offsets[0])..<(8 + headerLength + offsets[1]))
            let values = bytes.withUnsafeBytes { raw in (0..<(bytes.count / 4)).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
            out[name] = Tensor(values, shape: shape)
        }
        return out
    }
}
