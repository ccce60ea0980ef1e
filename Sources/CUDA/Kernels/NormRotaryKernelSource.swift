// CUDA C for RMSNorm (Hugging Face Llama semantics) and rotary embeddings (half-split pairs (i, i + d/2), the
// layout the CPU path uses after ModelLoader puts GGUF's q/k rows back into HF order).
//
// RMSNorm: one block per row (x, out: [rows, dim]; weight: fp32 [dim]; rstd: fp32 [rows]).
// RoPE: x [B, T, H, D] with a token stride (H·D for a packed tensor, larger inside a fused q|k|v buffer), so
// q and k are rotated where the projection GEMM wrote them, without the CPU's [B, H, T, D] transpose.

enum NormRotaryKernelSource {
    static let source = KernelPrelude.source + #"""
template <typename T> __device__ void rmsnorm_fwd_impl(T* out, float* rstd_out, const T* x, const float* w, int dim, float eps) {
    __shared__ float scratch[32];
    i64 row = blockIdx.x; const T* xr = x + row * dim; T* yr = out + row * dim;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) { float v = load(xr, i); ss += v * v; }
    ss = block_sum(ss, scratch);
    float rstd = 1.0f / sqrtf(ss / (float)dim + eps);
    if (threadIdx.x == 0 && rstd_out) rstd_out[row] = rstd;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) store(yr, i, w[i] * (load(xr, i) * rstd));
}
// dx = r·(dOut ⊙ w) − x · r³ · Σ(dOut ⊙ w ⊙ x) / dim.
template <typename T> __device__ void rmsnorm_bwd_impl(T* dx, const T* dout, const T* x, const float* w, const float* rstd, int dim) {
    __shared__ float scratch[32];
    i64 row = blockIdx.x; const T* xr = x + row * dim; const T* gr = dout + row * dim;
    float dot = 0.0f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) dot += load(gr, i) * w[i] * load(xr, i);
    dot = block_sum(dot, scratch);
    float s = rstd[row], c = s * s * s * dot / (float)dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) store(dx + row * dim, i, s * (load(gr, i) * w[i]) - c * load(xr, i));
}
// dWeight[i] += Σ_rows dOut·x·rstd: grid (ceil(dim / blockDim), row chunks); one atomic per column per block.
template <typename T> __device__ void rmsnorm_bwd_weight_impl(float* dw, const T* dout, const T* x, const float* rstd, i64 rows, int dim, int rowsPerBlock) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= dim) return;
    i64 r0 = (i64)blockIdx.y * rowsPerBlock, r1 = min(rows, r0 + rowsPerBlock);
    float acc = 0.0f;
    for (i64 r = r0; r < r1; r++) acc += load(dout, r * dim + i) * (load(x, r * dim + i) * rstd[r]);
    atomicAdd(dw + i, acc);
}
extern "C" __global__ void rmsnorm_fwd_f32(float* out, float* rstd, const float* x, const float* w, int dim, float eps) { rmsnorm_fwd_impl(out, rstd, x, w, dim, eps); }
extern "C" __global__ void rmsnorm_fwd_bf16(bf16* out, float* rstd, const bf16* x, const float* w, int dim, float eps) { rmsnorm_fwd_impl(out, rstd, x, w, dim, eps); }
extern "C" __global__ void rmsnorm_bwd_f32(float* dx, const float* dout, const float* x, const float* w, const float* rstd, int dim) { rmsnorm_bwd_impl(dx, dout, x, w, rstd, dim); }
extern "C" __global__ void rmsnorm_bwd_bf16(bf16* dx, const bf16* dout, const bf16* x, const float* w, const float* rstd, int dim) { rmsnorm_bwd_impl(dx, dout, x, w, rstd, dim); }
extern "C" __global__ void rmsnorm_bwd_weight_f32(float* dw, const float* dout, const float* x, const float* rstd, i64 rows, int dim, int rowsPerBlock) { rmsnorm_bwd_weight_impl(dw, dout, x, rstd, rows, dim, rowsPerBlock); }
extern "C" __global__ void rmsnorm_bwd_weight_bf16(float* dw, const bf16* dout, const bf16* x, const float* rstd, i64 rows, int dim, int rowsPerBlock) { rmsnorm_bwd_weight_impl(dw, dout, x, rstd, rows, dim, rowsPerBlock); }

// Rotation of pair (i, i + D/2) of head h of token t in batch item b by the angle whose cos/sin are at table
// row t ([T, D/2]) or b·T + t ([B, T, D/2] with per_batch, for left-padded batches). sign = −1 is the inverse
// rotation (backward). out may equal x. Grid-stride over B·T·H·D/2 pairs.
template <typename T> __device__ void rope_impl(T* out, const T* x, const float* cosv, const float* sinv, int B, int Tn, int H, int D, i64 tokenStride, int perBatch, float sign) {
    int half = D / 2;
    i64 n = (i64)B * Tn * H * half;
    GRID_STRIDE(p, n) {
        int i = (int)(p % half); i64 rest = p / half;
        int h = (int)(rest % H); rest /= H;
        int t = (int)(rest % Tn); int b = (int)(rest / Tn);
        i64 row = perBatch ? (i64)b * Tn + t : t;
        float c = cosv[row * half + i], s = sign * sinv[row * half + i];
        i64 base = ((i64)b * Tn + t) * tokenStride + (i64)h * D;
        float a = load(x, base + i), bb = load(x, base + i + half);
        store(out, base + i, a * c - bb * s);
        store(out, base + i + half, bb * c + a * s);
    }
}
extern "C" __global__ void rope_f32(float* out, const float* x, const float* cosv, const float* sinv, int B, int Tn, int H, int D, i64 tokenStride, int perBatch, float sign) { rope_impl(out, x, cosv, sinv, B, Tn, H, D, tokenStride, perBatch, sign); }
extern "C" __global__ void rope_bf16(bf16* out, const bf16* x, const float* cosv, const float* sinv, int B, int Tn, int H, int D, i64 tokenStride, int perBatch, float sign) { rope_impl(out, x, cosv, sinv, B, Tn, H, D, tokenStride, perBatch, sign); }
"""#
}
