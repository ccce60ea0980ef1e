// Fuzz targets for the binary weight formats: GGUF (header, tensor table, every tensor dequantised, quantized
// matrices, the Llama config and tokenizer read from its metadata), raw ggml blocks, and safetensors.
import Foundation
import TensorCore
import Formats
import Models
import Tokenizers

enum FuzzFormats {
    static func gguf(_ bytes: [UInt8]) throws {
        let file = try GGUFFile(url: try FuzzScratch.file("model.gguf", bytes))
        for info in file.tensors {
            // The table was validated: every tensor's bytes lie inside the file.
            guard info.offset >= 0, file.dataOffset + info.offset + info.byteCount <= file.fileSize else {
                throw FuzzInvariantViolation(target: "gguf", reason: "tensor \(info.name) extends past the file")
            }
            guard info.type.isDequantizable, info.elementCount <= FuzzLimits.maxElements else { continue }
            let dense = try file.tensor(info.name)
            guard dense.count == info.elementCount, dense.shape == info.shape else {
                throw FuzzInvariantViolation(target: "gguf", reason: "\(info.name): \(dense.shape) from \(info.dimensions)")
            }
            if let matrix = try? file.quantizedMatrix(info.name) {
                // Row-wise dequantisation must agree with the whole-tensor path, bit for bit.
                let rows = try matrix.dequantizeRows(0..<matrix.rows)
                guard rows.count == dense.count, equalBits(rows, dense) else {
                    throw FuzzInvariantViolation(target: "gguf", reason: "\(info.name): quantized rows differ from tensor()")
                }
            }
        }
        _ = try? LlamaConfig(gguf: file)
        if let tokenizer = try? BPETokenizer(gguf: file) { exercise(tokenizer) }
    }

    /// First byte: index into the dequantizable types; the rest: blocks of that type (a partial block is dropped).
    static func dequantize(_ bytes: [UInt8]) throws {
        let types = GGMLType.allCases.filter(\.isDequantizable)
        guard let selector = bytes.first else { return }
        let type = types[Int(selector) % types.count]
        let blocks = (bytes.count - 1) / type.blockBytes
        let payload = Array(bytes[1..<(1 + blocks * type.blockBytes)])
        let values = try GGMLDequantizer.dequantize(type, bytes: payload, count: blocks * type.blockSize)
        guard values.count == blocks * type.blockSize else {
            throw FuzzInvariantViolation(target: "dequantize", reason: "\(type.name): \(values.count) values from \(blocks) blocks")
        }
        guard blocks > 0 else { return }
        // One row of all blocks: the quantized matrix (decode and training path) must give the same floats.
        let matrix = try QuantizedMatrix(type: type, rows: 1, columns: blocks * type.blockSize, bytes: payload)
        let dense = matrix.dequantized()
        var same = true
        dense.withUnsafeBufferPointer { d in for i in 0..<values.count where d[i].bitPattern != values[i].bitPattern { same = false } }
        guard same else { throw FuzzInvariantViolation(target: "dequantize", reason: "\(type.name): matrix rows differ from block decode") }
        // The fused row·vector kernel reads exactly the same bytes; ASan checks it stays inside them.
        let x = Tensor(repeating: 1, shape: [blocks * type.blockSize])
        _ = try matrix.matvec(x)
    }

    static func safetensors(_ bytes: [UInt8]) throws {
        let file = try SafeTensorsFile(bytes: bytes, label: "fuzz.safetensors")
        var total = 0
        for info in file.tensorInfos {
            guard info.dataOffsets.lowerBound >= 0, info.dataOffsets.upperBound <= bytes.count else {
                throw FuzzInvariantViolation(target: "safetensors", reason: "\(info.name) data past the end")
            }
            total += info.elementCount
            guard total <= FuzzLimits.maxElements else { return }
            let tensor = try file.tensor(info.name)
            guard tensor.count == info.elementCount else {
                throw FuzzInvariantViolation(target: "safetensors", reason: "\(info.name): \(tensor.count) of \(info.elementCount)")
            }
            if [SafeTensorsDType.i64, .i32, .i16, .i8, .u8, .bool].contains(info.dtype) {
                _ = try? file.int64s(info.name)
            }
        }
    }

    static func equalBits(_ a: Tensor, _ b: Tensor) -> Bool {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in
            x.count == y.count && zip(x, y).allSatisfy { $0.bitPattern == $1.bitPattern }
        } }
    }

    /// Encodes and decodes a fixed text (specials included) with a tokenizer that was accepted.
    static func exercise(_ tokenizer: BPETokenizer) {
        let ids = tokenizer.encode("Hello, wörld! 123 <|im_start|>user\n\u{1F600}", addSpecialTokens: true, parseSpecialTokens: true)
        _ = try? tokenizer.decode(ids, skipSpecialTokens: false)
    }
}
