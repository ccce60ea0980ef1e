// CUDA C for causal grouped-query attention, flash style: scores never leave the chip. Forward streams key/value
// tiles of 32 through shared memory with an online softmax and saves only the log-sum-exp per query row;
// backward recomputes probabilities from it (dq pass over query rows, dk/dv pass over key rows, so GQA's
// sum over the query heads of a kv head needs no atomics).
//
// Layouts (element strides, so q/k/v may sit inside one fused projection output):
//   q[b·qBatch + t·qTok + h·D + d], t < T, h < Hq;  k, v[b·kBatch + s·kTok + g·D + d], s < S, g < Hkv
//   out[b·oBatch + t·oTok + h·D + d]; lse, dsum: [B, Hq, T]; keymask: additive [B, S] (0 / −inf) or null.
// Gradients dq, dk, dv use the layouts of q, k, v. Query head h reads kv head h / (Hq / Hkv). The causal mask is
// end-aligned as on the CPU: query t sees keys s ≤ S − T + t (prefill T = S, decode T = 1 against a cache).
// Inside a warp, lane j scores key j of the tile (a full dot product), then each lane owns dims d ≡ lane
// (mod 32) of the accumulators: D ≤ 128. Shared-memory sizes depend on D (LaunchGeometry.attention*).

enum AttentionKernelSource {
    static let source = KernelPrelude.source + #"""
#define ATT_WARPS 4
#define ATT_ROWS 4            // query (or key) rows per warp
#define ATT_TILE 32           // keys (or queries) per streamed tile
#define ATT_MAXC 4            // accumulator dims per lane: D ≤ 128

__device__ __forceinline__ bool key_visible(int s, int t, int S, int Tq, int causal) { return s < S && (!causal || s <= S - Tq + t); }

// grid (ceil(T / 16), Hq, B), block 128, dynamic smem (16·D + 32·(D+1) + 32·D + 128) floats.
template <typename T> __device__ void attention_fwd_impl(T* out, float* lse, const T* q, const T* k, const T* v, const float* keymask,
    int B, int Hq, int Hkv, int Tq, int S, int D, float scale, int causal,
    i64 qBatch, i64 qTok, i64 kBatch, i64 kTok, i64 oBatch, i64 oTok) {
    extern __shared__ float smem[];
    const int rowsPerBlock = ATT_WARPS * ATT_ROWS, Dp = D + 1;
    float* Qs = smem; float* Ks = Qs + rowsPerBlock * D; float* Vs = Ks + ATT_TILE * Dp; float* Ps = Vs + ATT_TILE * D;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int t0 = blockIdx.x * rowsPerBlock, h = blockIdx.y, b = blockIdx.z, g = h / (Hq / Hkv);
    const T* qb = q + b * qBatch + (i64)h * D; const T* kb = k + b * kBatch + (i64)g * D; const T* vb = v + b * kBatch + (i64)g * D;
    for (int idx = threadIdx.x; idx < rowsPerBlock * D; idx += blockDim.x) {
        int r = idx / D, d = idx % D, t = t0 + r;
        Qs[idx] = t < Tq ? load(qb, t * qTok + d) : 0.0f;
    }
    float m[ATT_ROWS], l[ATT_ROWS], acc[ATT_ROWS][ATT_MAXC];
    #pragma unroll
    for (int rr = 0; rr < ATT_ROWS; rr++) { m[rr] = -LK_INF; l[rr] = 0.0f;
        #pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) acc[rr][c] = 0.0f; }
    int lastRow = min(Tq, t0 + rowsPerBlock) - 1;
    int keyEnd = causal ? min(S, S - Tq + lastRow + 1) : S;
    for (int s0 = 0; s0 < keyEnd; s0 += ATT_TILE) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < ATT_TILE * D; idx += blockDim.x) {
            int j = idx / D, d = idx % D, s = s0 + j;
            Ks[j * Dp + d] = s < S ? load(kb, s * kTok + d) : 0.0f;
            Vs[j * D + d] = s < S ? load(vb, s * kTok + d) : 0.0f;
        }
        __syncthreads();
        #pragma unroll
        for (int rr = 0; rr < ATT_ROWS; rr++) {
            int r = warp * ATT_ROWS + rr, t = t0 + r;
            if (t >= Tq) continue;                                   // uniform across the warp
            int s = s0 + lane;
            float score = -LK_INF;
            if (key_visible(s, t, S, Tq, causal)) {
                const float* qr = Qs + r * D; const float* kr = Ks + lane * Dp;
                float dot = 0.0f;
                _Pragma("unroll 4") for (int d = 0; d < D; d++) dot += qr[d] * kr[d];
                score = dot * scale + (keymask ? keymask[(i64)b * S + s] : 0.0f);
            }
            float newM = fmaxf(m[rr], warp_max(score));
            if (newM == -LK_INF) continue;                           // nothing visible yet
            float p = score == -LK_INF ? 0.0f : expf(score - newM);
            float corr = m[rr] == -LK_INF ? 0.0f : expf(m[rr] - newM);
            l[rr] = l[rr] * corr + warp_sum(p);
            Ps[warp * 32 + lane] = p;
            __syncwarp();
            #pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) {
                int d = lane + 32 * c;
                if (d < D) {
                    float a = acc[rr][c] * corr;
                    _Pragma("unroll 4") for (int j = 0; j < ATT_TILE; j++) a += Ps[warp * 32 + j] * Vs[j * D + d];
                    acc[rr][c] = a;
                }
            }
            __syncwarp();
            m[rr] = newM;
        }
    }
    #pragma unroll
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int t = t0 + warp * ATT_ROWS + rr;
        if (t >= Tq) continue;
        float inv = l[rr] > 0.0f ? 1.0f / l[rr] : 0.0f;
        T* orow = out + b * oBatch + t * oTok + (i64)h * D;
        #pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) { int d = lane + 32 * c; if (d < D) store(orow, d, acc[rr][c] * inv); }
        if (lane == 0 && lse) lse[((i64)b * Hq + h) * Tq + t] = l[rr] > 0.0f ? m[rr] + logf(l[rr]) : -LK_INF;
    }
}

// dsum[b, h, t] = Σ_d dOut·out (the softmax backward's row term). One warp per row; grid-stride over B·Hq·T.
template <typename T> __device__ void attention_bwd_dsum_impl(float* dsum, const T* out, const T* dout, int B, int Hq, int Tq, int D, i64 oBatch, i64 oTok) {
    int lane = threadIdx.x & 31;
    i64 rows = (i64)B * Hq * Tq, warpsTotal = (i64)gridDim.x * (blockDim.x >> 5);
    for (i64 row = (i64)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warpsTotal) {
        int t = (int)(row % Tq); i64 bh = row / Tq; int h = (int)(bh % Hq), b = (int)(bh / Hq);
        i64 base = b * oBatch + t * oTok + (i64)h * D;
        float s = 0.0f;
        for (int d = lane; d < D; d += 32) s += load(dout, base + d) * load(out, base + d);
        s = warp_sum(s);
        if (lane == 0) dsum[row] = s;
    }
}

// dq = scale · Σ_s P(dP − dsum)·k. grid (ceil(T / 16), Hq, B), block 128,
// dynamic smem (2·16·D + 2·32·(D+1) + 128) floats.
template <typename T> __device__ void attention_bwd_dq_impl(T* dq, const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* dsum, const float* keymask,
    int B, int Hq, int Hkv, int Tq, int S, int D, float scale, int causal,
    i64 qBatch, i64 qTok, i64 kBatch, i64 kTok, i64 oBatch, i64 oTok) {
    extern __shared__ float smem[];
    const int rowsPerBlock = ATT_WARPS * ATT_ROWS, Dp = D + 1;
    float* Qs = smem; float* dOs = Qs + rowsPerBlock * D; float* Ks = dOs + rowsPerBlock * D; float* Vs = Ks + ATT_TILE * Dp; float* Ps = Vs + ATT_TILE * Dp;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int t0 = blockIdx.x * rowsPerBlock, h = blockIdx.y, b = blockIdx.z, g = h / (Hq / Hkv);
    const T* kb = k + b * kBatch + (i64)g * D; const T* vb = v + b * kBatch + (i64)g * D;
    for (int idx = threadIdx.x; idx < rowsPerBlock * D; idx += blockDim.x) {
        int r = idx / D, d = idx % D, t = t0 + r;
        Qs[idx] = t < Tq ? load(q, b * qBatch + t * qTok + (i64)h * D + d) : 0.0f;
        dOs[idx] = t < Tq ? load(dout, b * oBatch + t * oTok + (i64)h * D + d) : 0.0f;
    }
    float rowLse[ATT_ROWS], rowD[ATT_ROWS], acc[ATT_ROWS][ATT_MAXC];
    #pragma unroll
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int t = t0 + warp * ATT_ROWS + rr; i64 li = ((i64)b * Hq + h) * Tq + t;
        rowLse[rr] = t < Tq ? lse[li] : -LK_INF; rowD[rr] = t < Tq ? dsum[li] : 0.0f;
        #pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) acc[rr][c] = 0.0f;
    }
    int lastRow = min(Tq, t0 + rowsPerBlock) - 1;
    int keyEnd = causal ? min(S, S - Tq + lastRow + 1) : S;
    for (int s0 = 0; s0 < keyEnd; s0 += ATT_TILE) {
        __syncthreads();
        for (int idx = threadIdx.x; idx < ATT_TILE * D; idx += blockDim.x) {
            int j = idx / D, d = idx % D, s = s0 + j;
            Ks[j * Dp + d] = s < S ? load(kb, s * kTok + d) : 0.0f;
            Vs[j * Dp + d] = s < S ? load(vb, s * kTok + d) : 0.0f;
        }
        __syncthreads();
        #pragma unroll
        for (int rr = 0; rr < ATT_ROWS; rr++) {
            int r = warp * ATT_ROWS + rr, t = t0 + r;
            if (t >= Tq || rowLse[rr] == -LK_INF) continue;
            int s = s0 + lane;
            float ds = 0.0f;
            if (key_visible(s, t, S, Tq, causal)) {
                const float* qr = Qs + r * D; const float* gr = dOs + r * D;
                const float* kr = Ks + lane * Dp; const float* vr = Vs + lane * Dp;
                float dot = 0.0f, dp = 0.0f;
                _Pragma("unroll 4") for (int d = 0; d < D; d++) { dot += qr[d] * kr[d]; dp += gr[d] * vr[d]; }
                float score = dot * scale + (keymask ? keymask[(i64)b * S + s] : 0.0f);
                float p = score == -LK_INF ? 0.0f : expf(score - rowLse[rr]);
                ds = p * (dp - rowD[rr]);
            }
            Ps[warp * 32 + lane] = ds;
            __syncwarp();
            #pragma unroll
            for (int c = 0; c < ATT_MAXC; c++) {
                int d = lane + 32 * c;
                if (d < D) { float a = acc[rr][c]; _Pragma("unroll 4") for (int j = 0; j < ATT_TILE; j++) a += Ps[warp * 32 + j] * Ks[j * Dp + d]; acc[rr][c] = a; }
            }
            __syncwarp();
        }
    }
    #pragma unroll
    for (int rr = 0; rr < ATT_ROWS; rr++) {
        int t = t0 + warp * ATT_ROWS + rr;
        if (t >= Tq) continue;
        T* row = dq + b * qBatch + t * qTok + (i64)h * D;
        #pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) { int d = lane + 32 * c; if (d < D) store(row, d, acc[rr][c] * scale); }
    }
}

// dv = Σ_{h in group, t} P·dOut, dk = scale · Σ P(dP − dsum)·q. grid (ceil(S / 16), Hkv, B), block 128,
// dynamic smem (2·16·D + 2·32·(D+1) + 64 + 256) floats. Query tiles start at the first query that sees the
// block's first key (causal), so a block does only the visible triangle.
template <typename T> __device__ void attention_bwd_dkdv_impl(T* dk, T* dv, const T* q, const T* k, const T* v, const T* dout, const float* lse, const float* dsum, const float* keymask,
    int B, int Hq, int Hkv, int Tq, int S, int D, float scale, int causal,
    i64 qBatch, i64 qTok, i64 kBatch, i64 kTok, i64 oBatch, i64 oTok) {
    extern __shared__ float smem[];
    const int keysPerBlock = ATT_WARPS * ATT_ROWS, Dp = D + 1;
    float* Ks = smem; float* Vs = Ks + keysPerBlock * D; float* Qs = Vs + keysPerBlock * D; float* dOs = Qs + ATT_TILE * Dp;
    float* Ls = dOs + ATT_TILE * Dp; float* Dsm = Ls + ATT_TILE; float* Ps = Dsm + ATT_TILE; float* DSs = Ps + ATT_WARPS * 32;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int s0 = blockIdx.x * keysPerBlock, g = blockIdx.y, b = blockIdx.z, rep = Hq / Hkv;
    const T* kb = k + b * kBatch + (i64)g * D; const T* vb = v + b * kBatch + (i64)g * D;
    for (int idx = threadIdx.x; idx < keysPerBlock * D; idx += blockDim.x) {
        int j = idx / D, d = idx % D, s = s0 + j;
        Ks[idx] = s < S ? load(kb, s * kTok + d) : 0.0f;
        Vs[idx] = s < S ? load(vb, s * kTok + d) : 0.0f;
    }
    float accK[ATT_ROWS][ATT_MAXC], accV[ATT_ROWS][ATT_MAXC];
    #pragma unroll
    for (int kk = 0; kk < ATT_ROWS; kk++) {
        #pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) { accK[kk][c] = 0.0f; accV[kk][c] = 0.0f; }
    }
    int tStart = causal ? max(0, s0 - (S - Tq)) : 0;
    for (int hh = 0; hh < rep; hh++) {
        int h = g * rep + hh;
        for (int q0 = tStart - tStart % ATT_TILE; q0 < Tq; q0 += ATT_TILE) {
            __syncthreads();
            for (int idx = threadIdx.x; idx < ATT_TILE * D; idx += blockDim.x) {
                int i = idx / D, d = idx % D, t = q0 + i;
                Qs[i * Dp + d] = t < Tq ? load(q, b * qBatch + t * qTok + (i64)h * D + d) : 0.0f;
                dOs[i * Dp + d] = t < Tq ? load(dout, b * oBatch + t * oTok + (i64)h * D + d) : 0.0f;
            }
            if (threadIdx.x < ATT_TILE) {
                int t = q0 + threadIdx.x; i64 li = ((i64)b * Hq + h) * Tq + t;
                Ls[threadIdx.x] = t < Tq ? lse[li] : -LK_INF;
                Dsm[threadIdx.x] = t < Tq ? dsum[li] : 0.0f;
            }
            __syncthreads();
            #pragma unroll
            for (int kk = 0; kk < ATT_ROWS; kk++) {
                int j = warp * ATT_ROWS + kk, s = s0 + j;
                if (s >= S) continue;                                  // uniform across the warp
                int t = q0 + lane;
                float p = 0.0f, ds = 0.0f;
                if (t < Tq && Ls[lane] != -LK_INF && key_visible(s, t, S, Tq, causal)) {
                    const float* qr = Qs + lane * Dp; const float* gr = dOs + lane * Dp;
                    const float* kr = Ks + j * D; const float* vr = Vs + j * D;
                    float dot = 0.0f, dp = 0.0f;
                    _Pragma("unroll 4") for (int d = 0; d < D; d++) { dot += qr[d] * kr[d]; dp += gr[d] * vr[d]; }
                    float score = dot * scale + (keymask ? keymask[(i64)b * S + s] : 0.0f);
                    p = score == -LK_INF ? 0.0f : expf(score - Ls[lane]);
                    ds = p * (dp - Dsm[lane]);
                }
                Ps[warp * 32 + lane] = p; DSs[warp * 32 + lane] = ds;
                __syncwarp();
                #pragma unroll
                for (int c = 0; c < ATT_MAXC; c++) {
                    int d = lane + 32 * c;
                    if (d < D) {
                        float av = accV[kk][c], ak = accK[kk][c];
                        _Pragma("unroll 4") for (int i = 0; i < ATT_TILE; i++) { av += Ps[warp * 32 + i] * dOs[i * Dp + d]; ak += DSs[warp * 32 + i] * Qs[i * Dp + d]; }
                        accV[kk][c] = av; accK[kk][c] = ak;
                    }
                }
                __syncwarp();
            }
        }
    }
    #pragma unroll
    for (int kk = 0; kk < ATT_ROWS; kk++) {
        int s = s0 + warp * ATT_ROWS + kk;
        if (s >= S) continue;
        i64 base = b * kBatch + s * kTok + (i64)g * D;
        #pragma unroll
        for (int c = 0; c < ATT_MAXC; c++) {
            int d = lane + 32 * c;
            if (d < D) { if (dk) store(dk, base + d, accK[kk][c] * scale); if (dv) store(dv, base + d, accV[kk][c]); }
        }
    }
}

#define ATT_ARGS int B, int Hq, int Hkv, int Tq, int S, int D, float scale, int causal, i64 qBatch, i64 qTok, i64 kBatch, i64 kTok, i64 oBatch, i64 oTok
#define ATT_PASS B, Hq, Hkv, Tq, S, D, scale, causal, qBatch, qTok, kBatch, kTok, oBatch, oTok
extern "C" __global__ void attention_fwd_f32(float* out, float* lse, const float* q, const float* k, const float* v, const float* keymask, ATT_ARGS) { attention_fwd_impl(out, lse, q, k, v, keymask, ATT_PASS); }
extern "C" __global__ void attention_fwd_bf16(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, const float* keymask, ATT_ARGS) { attention_fwd_impl(out, lse, q, k, v, keymask, ATT_PASS); }
extern "C" __global__ void attention_bwd_dsum_f32(float* dsum, const float* out, const float* dout, int B, int Hq, int Tq, int D, i64 oBatch, i64 oTok) { attention_bwd_dsum_impl(dsum, out, dout, B, Hq, Tq, D, oBatch, oTok); }
extern "C" __global__ void attention_bwd_dsum_bf16(float* dsum, const bf16* out, const bf16* dout, int B, int Hq, int Tq, int D, i64 oBatch, i64 oTok) { attention_bwd_dsum_impl(dsum, out, dout, B, Hq, Tq, D, oBatch, oTok); }
extern "C" __global__ void attention_bwd_dq_f32(float* dq, const float* q, const float* k, const float* v, const float* dout, const float* lse, const float* dsum, const float* keymask, ATT_ARGS) { attention_bwd_dq_impl(dq, q, k, v, dout, lse, dsum, keymask, ATT_PASS); }
extern "C" __global__ void attention_bwd_dq_bf16(bf16* dq, const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse, const float* dsum, const float* keymask, ATT_ARGS) { attention_bwd_dq_impl(dq, q, k, v, dout, lse, dsum, keymask, ATT_PASS); }
extern "C" __global__ void attention_bwd_dkdv_f32(float* dk, float* dv, const float* q, const float* k, const float* v, const float* dout, const float* lse, const float* dsum, const float* keymask, ATT_ARGS) { attention_bwd_dkdv_impl(dk, dv, q, k, v, dout, lse, dsum, keymask, ATT_PASS); }
extern "C" __global__ void attention_bwd_dkdv_bf16(bf16* dk, bf16* dv, const bf16* q, const bf16* k, const bf16* v, const bf16* dout, const float* lse, const float* dsum, const float* keymask, ATT_ARGS) { attention_bwd_dkdv_impl(dk, dv, q, k, v, dout, lse, dsum, keymask, ATT_PASS); }

// KV cache append for generation: rows [B, T, Hkv·D] of new keys (or values) copied to positions
// start..start+T−1 of the cache [B, capacity, Hkv·D]. Grid-stride over B·T·Hkv·D.
template <typename T> __device__ void kv_append_impl(T* cache, const T* rows, int B, int Tn, int width, int capacity, int start, i64 rowsTok, i64 rowsBatch) {
    i64 n = (i64)B * Tn * width;
    GRID_STRIDE(i, n) {
        int c = (int)(i % width); i64 rest = i / width; int t = (int)(rest % Tn), b = (int)(rest / Tn);
        cache[((i64)b * capacity + start + t) * width + c] = rows[b * rowsBatch + t * rowsTok + c];
    }
}
extern "C" __global__ void kv_append_f32(float* cache, const float* rows, int B, int Tn, int width, int capacity, int start, i64 rowsTok, i64 rowsBatch) { kv_append_impl(cache, rows, B, Tn, width, capacity, start, rowsTok, rowsBatch); }
extern "C" __global__ void kv_append_bf16(bf16* cache, const bf16* rows, int B, int Tn, int width, int capacity, int start, i64 rowsTok, i64 rowsBatch) { kv_append_impl(cache, rows, B, Tn, width, capacity, start, rowsTok, rowsBatch); }
"""#
}
