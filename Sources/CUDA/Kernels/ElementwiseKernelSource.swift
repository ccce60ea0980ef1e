// CUDA C for the element-wise ops of a training step: casts, residual adds, scaled adds, SwiGLU, LoRA dropout
// (the CPU's counter-based RNG, so masks are identical) and AdaLoRA's E scaling/masking.
// Every kernel is grid-stride over n elements (launch: `LaunchGeometry.elementwise`).

enum ElementwiseKernelSource {
    static let source = KernelPrelude.source + #"""
extern "C" __global__ void cast_f32_to_bf16(bf16* out, const float* x, i64 n) { GRID_STRIDE(i, n) out[i] = float_to_bf16(x[i]); }
extern "C" __global__ void cast_bf16_to_f32(float* out, const bf16* x, i64 n) { GRID_STRIDE(i, n) out[i] = bf16_to_float(x[i]); }

// out = a + b (the residual stream); out may alias a or b.
template <typename T> __device__ void add_impl(T* out, const T* a, const T* b, i64 n) {
    GRID_STRIDE(i, n) store(out, i, load(a, i) + load(b, i));
}
extern "C" __global__ void add_f32(float* out, const float* a, const float* b, i64 n) { add_impl(out, a, b, n); }
extern "C" __global__ void add_bf16(bf16* out, const bf16* a, const bf16* b, i64 n) { add_impl(out, a, b, n); }

// y += alpha · x (a LoRA branch onto the base output; gradient accumulation).
template <typename TY, typename TX> __device__ void axpy_impl(TY* y, const TX* x, float alpha, i64 n) {
    GRID_STRIDE(i, n) store(y, i, load(y, i) + alpha * load(x, i));
}
extern "C" __global__ void axpy_f32(float* y, const float* x, float alpha, i64 n) { axpy_impl(y, x, alpha, n); }
extern "C" __global__ void axpy_bf16(bf16* y, const bf16* x, float alpha, i64 n) { axpy_impl(y, x, alpha, n); }
extern "C" __global__ void axpy_bf16_into_f32(float* y, const bf16* x, float alpha, i64 n) { axpy_impl(y, x, alpha, n); }

// x ← alpha · x.
extern "C" __global__ void scale_f32(float* x, float alpha, i64 n) { GRID_STRIDE(i, n) x[i] *= alpha; }
extern "C" __global__ void scale_bf16(bf16* x, float alpha, i64 n) { GRID_STRIDE(i, n) x[i] = float_to_bf16(alpha * bf16_to_float(x[i])); }

// SwiGLU: out = silu(gate) · up, silu(v) = v / (1 + e^−v) as the CPU computes it.
template <typename T> __device__ void swiglu_fwd_impl(T* out, const T* gate, const T* up, i64 n) {
    GRID_STRIDE(i, n) { float v = load(gate, i); store(out, i, v / (1.0f + expf(-v)) * load(up, i)); }
}
// dGate = dOut·up·σ(v)·(1 + v(1 − σ(v))), dUp = dOut·v·σ(v); either output may be null (frozen input).
template <typename T> __device__ void swiglu_bwd_impl(T* dgate, T* dup, const T* dout, const T* gate, const T* up, i64 n) {
    GRID_STRIDE(i, n) {
        float g = load(dout, i), v = load(gate, i), s = 1.0f / (1.0f + expf(-v));
        if (dgate) store(dgate, i, g * load(up, i) * s * (1.0f + v * (1.0f - s)));
        if (dup) store(dup, i, g * v * s);
    }
}
extern "C" __global__ void swiglu_fwd_f32(float* out, const float* gate, const float* up, i64 n) { swiglu_fwd_impl(out, gate, up, n); }
extern "C" __global__ void swiglu_fwd_bf16(bf16* out, const bf16* gate, const bf16* up, i64 n) { swiglu_fwd_impl(out, gate, up, n); }
extern "C" __global__ void swiglu_bwd_f32(float* dgate, float* dup, const float* dout, const float* gate, const float* up, i64 n) { swiglu_bwd_impl(dgate, dup, dout, gate, up, n); }
extern "C" __global__ void swiglu_bwd_bf16(bf16* dgate, bf16* dup, const bf16* dout, const bf16* gate, const bf16* up, i64 n) { swiglu_bwd_impl(dgate, dup, dout, gate, up, n); }

// Inverted dropout with RandomGenerator's stream: element i keeps when unit(seed, start + i) < keep, where
// unit = (SplitMix64(seed, counter) >> 40) · 2^−24. Kept elements are multiplied by `scale` = 1/keep
// (0 when keep = 0), exactly the CPU's bernoulli mask times its scale. Backward applies the same mask to dOut.
__device__ __forceinline__ u64 splitmix64(u64 seed, u64 counter) {
    u64 z = seed + (counter + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
template <typename T> __device__ void dropout_impl(T* out, const T* x, u64 seed, u64 start, float keep, float scale, i64 n) {
    GRID_STRIDE(i, n) {
        float u = (float)(splitmix64(seed, start + (u64)i) >> 40) * (1.0f / 16777216.0f);
        float m = u < keep ? scale : 0.0f;
        store(out, i, load(x, i) * m);
    }
}
extern "C" __global__ void dropout_f32(float* out, const float* x, u64 seed, u64 start, float keep, float scale, i64 n) { dropout_impl(out, x, seed, start, keep, scale, n); }
extern "C" __global__ void dropout_bf16(bf16* out, const bf16* x, u64 seed, u64 start, float keep, float scale, i64 n) { dropout_impl(out, x, seed, start, keep, scale, n); }

// AdaLoRA: down [rows, r] ⊙ E [r] · factor, forward and backward. dE (fp32, [r]) is accumulated with one
// atomic per (block, column): each block reduces its rows first. Launch: grid-stride over rows·r.
template <typename T> __device__ void adalora_scale_fwd_impl(T* out, const T* down, const float* e, float factor, i64 rows, int r) {
    GRID_STRIDE(i, rows * r) store(out, i, load(down, i) * e[i % r] * factor);
}
template <typename T> __device__ void adalora_scale_bwd_impl(T* ddown, float* de, const T* dout, const T* down, const float* e, float factor, i64 rows, int r) {
    GRID_STRIDE(i, rows * r) {
        int j = (int)(i % r);
        float g = load(dout, i);
        if (ddown) store(ddown, i, g * e[j] * factor);
        if (de) atomicAdd(de + j, g * load(down, i) * factor);
    }
}
extern "C" __global__ void adalora_scale_fwd_f32(float* out, const float* down, const float* e, float factor, i64 rows, int r) { adalora_scale_fwd_impl(out, down, e, factor, rows, r); }
extern "C" __global__ void adalora_scale_fwd_bf16(bf16* out, const bf16* down, const float* e, float factor, i64 rows, int r) { adalora_scale_fwd_impl(out, down, e, factor, rows, r); }
extern "C" __global__ void adalora_scale_bwd_f32(float* ddown, float* de, const float* dout, const float* down, const float* e, float factor, i64 rows, int r) { adalora_scale_bwd_impl(ddown, de, dout, down, e, factor, rows, r); }
extern "C" __global__ void adalora_scale_bwd_bf16(bf16* ddown, float* de, const bf16* dout, const bf16* down, const float* e, float factor, i64 rows, int r) { adalora_scale_bwd_impl(ddown, de, dout, down, e, factor, rows, r); }
// RankAllocator's budget mask: E_i ← 0 where score_i ≤ threshold (PEFT's masked_fill_, ties masked).
extern "C" __global__ void adalora_mask_e(float* e, const float* scores, float threshold, i64 n) {
    GRID_STRIDE(i, n) if (scores[i] <= threshold) e[i] = 0.0f;
}
"""#
}
