// Read access to a quantized matrix's raw ggml blocks, for consumers that move them elsewhere unchanged
// (the CUDA backend uploads Q4_1/Q8_0 bases as they are and dequantizes in its kernels).
extension QuantizedMatrix {
    /// The rows × rowBytes block bytes, row-major, valid during `body`.
    public func withUnsafeBlockBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: base, count: byteCount))
    }
}
