// CUDA C for the end of a step: the chunked LM-head cross-entropy (logits of one chunk of rows exist at a time,
// as in Autograd.linearCrossEntropy), the global gradient norm for clipping and AdamW on fp32 master weights.
// Nothing here returns to the host: the loss, the norm and the clip coefficient stay in device scalars that the
// next kernel reads, so a whole step is one stream of launches with a single read-back of the loss at the end.

enum LossOptimizerKernelSource {
    static let source = KernelPrelude.source + #"""
// Row r of logits [rows, V] (fp32, one chunk): lse[r] = log Σ exp, rowLoss[r] = lse − logit[target].
// Rows whose target is the ignore index (−100) or out of range get lse 0 and loss 0 (the host gathers only
// counted rows; this keeps a stray one harmless). One block per row.
extern "C" __global__ void cross_entropy_fwd(float* lse, float* rowLoss, const float* logits, const int* targets, int V, int ignoreIndex) {
    __shared__ float scratch[32];
    i64 r = blockIdx.x; const float* lr = logits + r * V; int target = targets[r];
    if (target == ignoreIndex || target < 0 || target >= V) {
        if (threadIdx.x == 0) { lse[r] = 0.0f; rowLoss[r] = 0.0f; }
        return;
    }
    float mx = -LK_INF;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, lr[j]);
    mx = block_max(mx, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += expf(lr[j] - mx);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) { float l = mx + logf(s); lse[r] = l; rowLoss[r] = l - lr[target]; }
}
// dLogits = (softmax − onehot) · (*gradScale) · invCount, written as T for the backward GEMMs (may alias
// logits when T is float). gradScale is a device scalar (the loss gradient, 1 unless accumulating/scaling).
template <typename T> __device__ void cross_entropy_bwd_impl(T* dlogits, const float* logits, const int* targets, const float* lse, const float* gradScale, float invCount, int V, int ignoreIndex) {
    i64 r = blockIdx.x; int target = targets[r];
    bool counted = !(target == ignoreIndex || target < 0 || target >= V);
    float scale = (gradScale ? *gradScale : 1.0f) * invCount, l = lse[r];
    for (int j = threadIdx.x; j < V; j += blockDim.x) {
        float g = counted ? (expf(logits[r * V + j] - l) - (j == target ? 1.0f : 0.0f)) * scale : 0.0f;
        store(dlogits, r * V + j, g);
    }
}
extern "C" __global__ void cross_entropy_bwd_f32(float* dlogits, const float* logits, const int* targets, const float* lse, const float* gradScale, float invCount, int V, int ignoreIndex) { cross_entropy_bwd_impl(dlogits, logits, targets, lse, gradScale, invCount, V, ignoreIndex); }
extern "C" __global__ void cross_entropy_bwd_bf16(bf16* dlogits, const float* logits, const int* targets, const float* lse, const float* gradScale, float invCount, int V, int ignoreIndex) { cross_entropy_bwd_impl(dlogits, logits, targets, lse, gradScale, invCount, V, ignoreIndex); }

// out[0] = Σ x · multiplier, in double (a mean loss over up to millions of rows). One block of 1024 threads.
extern "C" __global__ void sum_to_scalar(float* out, const float* x, i64 n, float multiplier) {
    __shared__ double partial[1024];
    double s = 0.0;
    for (i64 i = threadIdx.x; i < n; i += blockDim.x) s += (double)x[i];
    partial[threadIdx.x] = s;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) { if (threadIdx.x < o) partial[threadIdx.x] += partial[threadIdx.x + o]; __syncthreads(); }
    if (threadIdx.x == 0) out[0] = (float)(partial[0] * (double)multiplier);
}

// acc[0] += Σ g² (double, as NN.gradientNorm sums in Double). One launch per gradient tensor; grid-stride.
extern "C" __global__ void grad_sumsq(double* acc, const float* g, i64 n) {
    __shared__ float scratch[32];
    float s = 0.0f;
    GRID_STRIDE(i, n) s += g[i] * g[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) atomicAdd(acc, (double)s);
}
// norm[0] = √acc; coef[0] = maxNorm / (norm + 1e-6) when finite and < 1, else 1 (NN.clipGradNorm's rule:
// a non-finite norm leaves gradients untouched so the trainer can stop on it). maxNorm ≤ 0 disables clipping.
extern "C" __global__ void clip_coefficient(float* coef, float* norm, const double* acc, float maxNorm) {
    float total = (float)sqrt(acc[0]);
    norm[0] = total;
    float c = maxNorm / (total + 1e-6f);
    coef[0] = (maxNorm > 0.0f && isfinite(total) && c < 1.0f) ? c : 1.0f;
}

// AdamW, torch's single-tensor arithmetic as NN.AdamW on the CPU: g ← g·coef (clipping), then
//   p ← p·decay;  m ← m + b1c·(g − m);  v ← v·b2 + b2c·g²;  p ← p − stepSize · m / (√v / bc2Sqrt + eps)
// decay = 1 − lr·wd, stepSize = lr / (1 − β1ᵗ), bc2Sqrt = √(1 − β2ᵗ) are formed on the host in Double and
// rounded once. Products are rounded one at a time (no fused multiply-add) to follow the CPU's float ops.
extern "C" __global__ void adamw_step(float* p, float* m, float* v, const float* g, const float* coef, float decay, float stepSize, float bc2Sqrt, float b1c, float b2, float b2c, float eps, i64 n) {
    float c = coef ? coef[0] : 1.0f;
    GRID_STRIDE(i, n) {
        float gi = coef ? __fmul_rn(g[i], c) : g[i];
        float w = __fmul_rn(p[i], decay);
        float mi = __fadd_rn(m[i], __fmul_rn(b1c, __fsub_rn(gi, m[i])));
        float vi = __fadd_rn(__fmul_rn(v[i], b2), __fmul_rn(__fmul_rn(b2c, gi), gi));
        float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2Sqrt), eps);
        w = __fadd_rn(w, __fdiv_rn(__fmul_rn(-stepSize, mi), denom));
        p[i] = w; m[i] = mi; v[i] = vi;
    }
}
"""#
}
