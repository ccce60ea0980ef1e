// CUDA C fallback GEMM, used when cuBLAS cannot be loaded (a machine with a driver but no CUDA libraries):
// C = alpha · op(A) · op(B) + beta · C, row-major, strided batched over blockIdx.z, fp32 accumulation.
// op(A) is [M, K] (A stored [M, K], or [K, M] with transA); op(B) is [K, N] (B stored [K, N], or [N, K] with
// transB, the usual x·Wᵀ of a linear layer). 64×64 output tile per block of 256 threads, 4×4 per thread,
// K in steps of 16 through shared memory. Not tensor-core fast; cuBLAS is the fast path.

enum MatmulKernelSource {
    static let source = KernelPrelude.source + #"""
#define MM_TILE 64
#define MM_K 16
template <typename TA, typename TC> __device__ void gemm_impl(TC* C, const TA* A, const TA* Bm, int M, int N, int K, int lda, int ldb, int ldc,
    int transA, int transB, float alpha, float beta, i64 strideA, i64 strideB, i64 strideC) {
    __shared__ float As[MM_K][MM_TILE + 1];
    __shared__ float Bs[MM_K][MM_TILE + 1];
    const TA* a = A + blockIdx.z * strideA; const TA* b = Bm + blockIdx.z * strideB; TC* c = C + blockIdx.z * strideC;
    int row0 = blockIdx.y * MM_TILE, col0 = blockIdx.x * MM_TILE;
    int tr = threadIdx.x / 16, tc = threadIdx.x % 16;                // 16 × 16 threads, 4 × 4 outputs each
    float acc[4][4];
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        #pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f; }
    for (int k0 = 0; k0 < K; k0 += MM_K) {
        for (int idx = threadIdx.x; idx < MM_K * MM_TILE; idx += blockDim.x) {
            int kk = idx / MM_TILE, mm = idx % MM_TILE;
            int gm = row0 + mm, gk = k0 + kk;
            As[kk][mm] = (gm < M && gk < K) ? load(a, transA ? (i64)gk * lda + gm : (i64)gm * lda + gk) : 0.0f;
            int gn = col0 + mm;
            Bs[kk][mm] = (gn < N && gk < K) ? load(b, transB ? (i64)gn * ldb + gk : (i64)gk * ldb + gn) : 0.0f;
        }
        __syncthreads();
        #pragma unroll
        for (int kk = 0; kk < MM_K; kk++) {
            float av[4], bv[4];
            #pragma unroll
            for (int i = 0; i < 4; i++) { av[i] = As[kk][tr + 16 * i]; bv[i] = Bs[kk][tc + 16 * i]; }
            #pragma unroll
            for (int i = 0; i < 4; i++) {
                #pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] += av[i] * bv[j]; }
        }
        __syncthreads();
    }
    #pragma unroll
    for (int i = 0; i < 4; i++) {
        int gm = row0 + tr + 16 * i;
        if (gm >= M) continue;
        #pragma unroll
        for (int j = 0; j < 4; j++) {
            int gn = col0 + tc + 16 * j;
            if (gn >= N) continue;
            i64 at = (i64)gm * ldc + gn;
            float prior = beta != 0.0f ? beta * load(c, at) : 0.0f;
            store(c, at, alpha * acc[i][j] + prior);
        }
    }
}
#define MM_ARGS int M, int N, int K, int lda, int ldb, int ldc, int transA, int transB, float alpha, float beta, i64 strideA, i64 strideB, i64 strideC
#define MM_PASS M, N, K, lda, ldb, ldc, transA, transB, alpha, beta, strideA, strideB, strideC
extern "C" __global__ void gemm_f32(float* C, const float* A, const float* B, MM_ARGS) { gemm_impl(C, A, B, MM_PASS); }
extern "C" __global__ void gemm_bf16_f32out(float* C, const bf16* A, const bf16* B, MM_ARGS) { gemm_impl(C, A, B, MM_PASS); }
extern "C" __global__ void gemm_bf16(bf16* C, const bf16* A, const bf16* B, MM_ARGS) { gemm_impl(C, A, B, MM_PASS); }
"""#
}
