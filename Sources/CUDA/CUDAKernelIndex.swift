// The name of every kernel a launcher calls; `all` is checked against the sources' declared entry points.
enum K {
    typealias F = KernelFunction
    static func t(_ p: KernelProgram, _ base: String, _ type: DeviceElementType) -> F { F(p, base + (type == .bfloat16 ? "_bf16" : "_f32")) }
}

public enum CUDAKernelIndex {
    static let typedBases: [(KernelProgram, String)] = [
        (.elementwise, "add"), (.elementwise, "axpy"), (.elementwise, "scale"), (.elementwise, "swiglu_fwd"), (.elementwise, "swiglu_bwd"),
        (.elementwise, "dropout"), (.elementwise, "adalora_scale_fwd"), (.elementwise, "adalora_scale_bwd"),
        (.embeddingQuantized, "embedding_gather"), (.embeddingQuantized, "embedding_gather_q8_0"), (.embeddingQuantized, "embedding_gather_q4_1"),
        (.embeddingQuantized, "embedding_backward"), (.embeddingQuantized, "dequantize_q8_0"), (.embeddingQuantized, "dequantize_q4_1"),
        (.embeddingQuantized, "q8_0_matvec"), (.embeddingQuantized, "q4_1_matvec"),
        (.normRotary, "rmsnorm_fwd"), (.normRotary, "rmsnorm_bwd"), (.normRotary, "rmsnorm_bwd_weight"), (.normRotary, "rope"),
        (.attention, "attention_fwd"), (.attention, "attention_bwd_dsum"), (.attention, "attention_bwd_dq"), (.attention, "attention_bwd_dkdv"),
        (.attention, "kv_append"), (.lossOptimizer, "cross_entropy_bwd"),
    ]
    static let untyped: [KernelFunction] = [
        KernelFunction(.elementwise, "cast_f32_to_bf16"), KernelFunction(.elementwise, "cast_bf16_to_f32"),
        KernelFunction(.elementwise, "axpy_bf16_into_f32"), KernelFunction(.elementwise, "adalora_mask_e"),
        KernelFunction(.lossOptimizer, "cross_entropy_fwd"), KernelFunction(.lossOptimizer, "sum_to_scalar"),
        KernelFunction(.lossOptimizer, "grad_sumsq"), KernelFunction(.lossOptimizer, "clip_coefficient"),
        KernelFunction(.lossOptimizer, "adamw_step"),
        KernelFunction(.matmul, "gemm_f32"), KernelFunction(.matmul, "gemm_bf16_f32out"), KernelFunction(.matmul, "gemm_bf16"),
    ]
    /// Every kernel the launchers use.
    public static var all: [KernelFunction] {
        typedBases.flatMap { p, b in [K.t(p, b, .float32), K.t(p, b, .bfloat16)] } + untyped
    }
}
