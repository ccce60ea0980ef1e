// One entry of a GGUF tensor table, validated against the file when it was read.

/// Name, ggml dimensions, type and location of one tensor in a GGUF file.
public struct GGUFTensorInfo: Sendable, Equatable {
    /// Tensor name, e.g. `blk.0.attn_q.weight`.
    public let name: String
    /// ggml order: `dimensions[0]` (ne0) is the contiguous axis, i.e. a Linear weight is [in, out].
    public let dimensions: [Int]
    public let type: GGMLType
    /// Byte offset from the start of the data section (a multiple of the file's alignment).
    public let offset: Int
    /// Product of the dimensions.
    public let elementCount: Int
    /// Bytes of tensor data (whole blocks).
    public let byteCount: Int

    /// PyTorch order (ggml dims reversed): a Linear weight is [out, in].
    public var shape: [Int] { dimensions.reversed() }

    /// Elements per row: ne0, the contiguous axis (1 for a 0-dimensional tensor).
    public var rowLength: Int { dimensions.first ?? 1 }

    /// Number of rows of `rowLength` elements (product of the other dims).
    public var rowCount: Int { dimensions.dropFirst().reduce(1, *) }

    /// Bytes per row of `rowLength` elements.
    public var rowBytes: Int { rowLength / type.blockSize * type.blockBytes }
}
