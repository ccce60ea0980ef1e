import ArgumentParser
import Formats
import Foundation

/// `lorakit inspect PATH`: a model file's metadata and tensor table.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a GGUF or safetensors file's metadata and tensor table (name, type, shape, bytes).")

    @Argument(help: "Path to a .gguf or .safetensors file.") var path: String
    @Flag(help: "Print machine-readable JSON.") var json = false
    @Option(help: "Array items to show per metadata value (longer arrays are summarised with their count).")
    var limit: Int = 8

    func validate() throws {
        guard limit >= 0 else { throw ValidationError("--limit must be ≥ 0, got \(limit)") }
    }

    func run() throws {
        if path.lowercased().hasSuffix(".safetensors") {
            let file = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path))
            if json {
                let data = try JSONSerialization.data(withJSONObject: safeTensorsJSON(file), options: [.prettyPrinted, .sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(safeTensorsText(file), terminator: "")
            }
            return
        }
        let file = try GGUFFile(path: path)
        if json {
            let data = try JSONSerialization.data(withJSONObject: jsonReport(file), options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(textReport(file), terminator: "")
        }
    }

    private func jsonReport(_ file: GGUFFile) -> [String: Any] {
        var metadata: [String: Any] = [:]
        for key in file.metadataKeys { metadata[key] = file.metadata[key]?.jsonObject(maxItems: limit) }
        let tensors: [[String: Any]] = file.tensors.map {
            ["name": $0.name, "type": $0.type.name, "ggml_dims": $0.dimensions, "shape": $0.shape,
             "elements": $0.elementCount, "bytes": $0.byteCount, "offset": $0.offset]
        }
        return ["file": file.path, "version": Int(file.version), "alignment": file.alignment,
                "data_offset": file.dataOffset, "file_bytes": file.fileSize,
                "metadata_keys": file.metadataKeys, "metadata": metadata, "tensors": tensors]
    }

    private func textReport(_ file: GGUFFile) -> String {
        var out = "GGUF v\(file.version)  \(file.path)\n"
        out += "  \(formatBytes(file.fileSize)), alignment \(file.alignment), data section at byte \(file.dataOffset)\n\n"
        out += "metadata (\(file.metadataKeys.count) keys):\n"
        let keyWidth = min(48, file.metadataKeys.map(\.count).max() ?? 0)
        for key in file.metadataKeys {
            guard let value = file.metadata[key] else { continue }
            var type = "\(value.type)"
            if case let .array(elementType, values) = value { type = "\(elementType)[\(values.count)]" }
            out += "  \(pad(key, keyWidth))  \(pad(type, 14))  \(value.summary(maxItems: limit))\n"
        }
        let nameWidth = min(48, file.tensors.map(\.name.count).max() ?? 4)
        out += "\ntensors (\(file.tensors.count)):\n"
        out += "  \(pad("name", nameWidth))  \(pad("type", 7))  \(pad("shape [out, in]", 16))  \(pad("ggml dims", 16))  bytes\n"
        var byType: [String: Int] = [:]
        var totalBytes = 0
        for t in file.tensors {
            out += "  \(pad(t.name, nameWidth))  \(pad(t.type.name, 7))  \(pad("\(t.shape)", 16))  \(pad("\(t.dimensions)", 16))  \(t.byteCount)\n"
            byType[t.type.name, default: 0] += 1
            totalBytes += t.byteCount
        }
        let types = byType.sorted { $0.value > $1.value }.map { "\($0.key) × \($0.value)" }.joined(separator: ", ")
        let elements = file.tensors.reduce(0) { $0 + $1.elementCount }
        out += "\n\(file.tensors.count) tensors, \(elements) parameters, \(formatBytes(totalBytes)) of tensor data (\(types))\n"
        return out
    }

    private func safeTensorsJSON(_ file: SafeTensorsFile) -> [String: Any] {
        ["file": file.path, "format": "safetensors", "metadata": file.metadata,
         "tensors": file.tensorInfos.map { ["name": $0.name, "dtype": $0.dtype.rawValue, "shape": $0.shape,
                                            "elements": $0.elementCount, "bytes": $0.dataOffsets.count,
                                            "offsets": [$0.dataOffsets.lowerBound, $0.dataOffsets.upperBound]] }]
    }

    private func safeTensorsText(_ file: SafeTensorsFile) -> String {
        var out = "safetensors  \(file.path)\n"
        out += "metadata: " + (file.metadata.isEmpty ? "none" : file.metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")) + "\n\n"
        let nameWidth = min(64, file.tensorInfos.map(\.name.count).max() ?? 4)
        out += "tensors (\(file.tensorInfos.count)):\n  \(pad("name", nameWidth))  \(pad("dtype", 5))  \(pad("shape", 16))  bytes\n"
        for t in file.tensorInfos {
            out += "  \(pad(t.name, nameWidth))  \(pad(t.dtype.rawValue, 5))  \(pad("\(t.shape)", 16))  \(t.dataOffsets.count)\n"
        }
        let elements = file.tensorInfos.reduce(0) { $0 + $1.elementCount }
        let bytes = file.tensorInfos.reduce(0) { $0 + $1.dataOffsets.count }
        out += "\n\(file.tensorInfos.count) tensors, \(elements) parameters, \(formatBytes(bytes)) of tensor data\n"
        return out
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    private func formatBytes(_ n: Int) -> String {
        n >= 1 << 20 ? String(format: "%.1f MiB", Double(n) / Double(1 << 20)) : "\(n) bytes"
    }
}
