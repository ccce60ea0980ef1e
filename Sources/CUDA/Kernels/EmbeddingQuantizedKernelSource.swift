// CUDA C for token embeddings and GGUF blocks: gather (dense or straight from Q4_1/Q8_0 blocks), the
// gradient scatter-add, dequantisation into a dense scratch tile (QLoRA: the base stays quantized on the
// device, each layer's weight is expanded just before its GEMM) and a quantized matrix × few-rows product for
// decode steps, where expanding the whole weight would cost more than the product.
//
// Block layouts (ggml, as Formats/GGUF/GGMLDequantizer reads them), 32 elements per block:
//   Q8_0: 34 bytes = f16 d, 32 × int8 q;            x = d·q
//   Q4_1: 20 bytes = f16 d, f16 m, 16 × nibble pairs; byte j holds element j (low) and j + 16 (high); x = d·q + m
// Products and sums are rounded separately (__fmul_rn/__fadd_rn, no fused multiply-add) so values are
// bit-identical to the CPU's dequantisation.

enum EmbeddingQuantizedKernelSource {
    static let source = KernelPrelude.source + #"""
__device__ __forceinline__ unsigned short read_u16(const unsigned char* p) { return (unsigned short)(p[0] | (p[1] << 8)); }
__device__ __forceinline__ float dequant_q8_0(const unsigned char* row, i64 j) {
    const unsigned char* b = row + (j >> 5) * 34;
    float d = half_to_float(read_u16(b));
    return __fmul_rn((float)(signed char)b[2 + (j & 31)], d);
}
__device__ __forceinline__ float dequant_q4_1(const unsigned char* row, i64 j) {
    const unsigned char* b = row + (j >> 5) * 20;
    float d = half_to_float(read_u16(b)), m = half_to_float(read_u16(b + 2));
    int jj = (int)(j & 31);
    unsigned char q = b[4 + (jj & 15)];
    float v = (float)(jj < 16 ? (q & 0x0F) : (q >> 4));
    return __fadd_rn(__fmul_rn(v, d), m);
}

// out[t, :] = table[ids[t], :]; grid.x = rows, threads over dim. Ids outside [0, vocab) give a zero row
// (the host validates ids before upload; this only keeps a corrupt id from reading out of bounds).
template <typename TW, typename TO> __device__ void gather_dense(TO* out, const TW* table, const int* ids, int dim, int vocab) {
    i64 t = blockIdx.x; int id = ids[t];
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        store(out, t * dim + i, (id >= 0 && id < vocab) ? load(table, (i64)id * dim + i) : 0.0f);
}
extern "C" __global__ void embedding_gather_f32(float* out, const float* table, const int* ids, int dim, int vocab) { gather_dense(out, table, ids, dim, vocab); }
extern "C" __global__ void embedding_gather_bf16(bf16* out, const bf16* table, const int* ids, int dim, int vocab) { gather_dense(out, table, ids, dim, vocab); }
// Quantized tables: row_bytes = dim / 32 · block bytes.
template <typename TO> __device__ void gather_q8_0(TO* out, const unsigned char* table, const int* ids, int dim, int vocab) {
    i64 t = blockIdx.x; int id = ids[t]; i64 rowBytes = (i64)(dim / 32) * 34;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        store(out, t * dim + i, (id >= 0 && id < vocab) ? dequant_q8_0(table + id * rowBytes, i) : 0.0f);
}
template <typename TO> __device__ void gather_q4_1(TO* out, const unsigned char* table, const int* ids, int dim, int vocab) {
    i64 t = blockIdx.x; int id = ids[t]; i64 rowBytes = (i64)(dim / 32) * 20;
    for (int i = threadIdx.x; i < dim; i += blockDim.x)
        store(out, t * dim + i, (id >= 0 && id < vocab) ? dequant_q4_1(table + id * rowBytes, i) : 0.0f);
}
extern "C" __global__ void embedding_gather_q8_0_f32(float* out, const unsigned char* table, const int* ids, int dim, int vocab) { gather_q8_0(out, table, ids, dim, vocab); }
extern "C" __global__ void embedding_gather_q8_0_bf16(bf16* out, const unsigned char* table, const int* ids, int dim, int vocab) { gather_q8_0(out, table, ids, dim, vocab); }
extern "C" __global__ void embedding_gather_q4_1_f32(float* out, const unsigned char* table, const int* ids, int dim, int vocab) { gather_q4_1(out, table, ids, dim, vocab); }
extern "C" __global__ void embedding_gather_q4_1_bf16(bf16* out, const unsigned char* table, const int* ids, int dim, int vocab) { gather_q4_1(out, table, ids, dim, vocab); }

// dTable[ids[t], :] += dOut[t, :] (fp32 gradient; repeated ids add atomically). grid.x = rows.
template <typename T> __device__ void scatter_add(float* dtable, const T* dout, const int* ids, int dim, int vocab) {
    i64 t = blockIdx.x; int id = ids[t];
    if (id < 0 || id >= vocab) return;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) atomicAdd(dtable + (i64)id * dim + i, load(dout, t * dim + i));
}
extern "C" __global__ void embedding_backward_f32(float* dtable, const float* dout, const int* ids, int dim, int vocab) { scatter_add(dtable, dout, ids, dim, vocab); }
extern "C" __global__ void embedding_backward_bf16(float* dtable, const bf16* dout, const int* ids, int dim, int vocab) { scatter_add(dtable, dout, ids, dim, vocab); }

// Dense copy of `count` elements (a whole number of blocks) of a quantized matrix.
extern "C" __global__ void dequantize_q8_0_f32(float* out, const unsigned char* blocks, i64 count) { GRID_STRIDE(i, count) out[i] = dequant_q8_0(blocks, i); }
extern "C" __global__ void dequantize_q8_0_bf16(bf16* out, const unsigned char* blocks, i64 count) { GRID_STRIDE(i, count) out[i] = float_to_bf16(dequant_q8_0(blocks, i)); }
extern "C" __global__ void dequantize_q4_1_f32(float* out, const unsigned char* blocks, i64 count) { GRID_STRIDE(i, count) out[i] = dequant_q4_1(blocks, i); }
extern "C" __global__ void dequantize_q4_1_bf16(bf16* out, const unsigned char* blocks, i64 count) { GRID_STRIDE(i, count) out[i] = float_to_bf16(dequant_q4_1(blocks, i)); }

// y[m, r] = Σ_j x[m, j] · W[r, j] for a quantized W [outRows, inCols] and few rows m (decode, batch ≤ 8).
// One warp per output row r; the warp's lanes stride over the columns, each block of 32 read once per m.
#define QMV_MAX_ROWS 8
template <typename T, bool Q4> __device__ void qmatvec(T* y, const unsigned char* w, const T* x, int rows, int outRows, int inCols) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (r >= outRows) return;
    const unsigned char* wr = w + (i64)r * (inCols / 32) * (Q4 ? 20 : 34);
    float acc[QMV_MAX_ROWS];
    #pragma unroll
    for (int m = 0; m < QMV_MAX_ROWS; m++) acc[m] = 0.0f;
    for (int j = lane; j < inCols; j += 32) {
        float wj = Q4 ? dequant_q4_1(wr, j) : dequant_q8_0(wr, j);
        #pragma unroll
        for (int m = 0; m < QMV_MAX_ROWS; m++) if (m < rows) acc[m] += wj * load(x, (i64)m * inCols + j);
    }
    #pragma unroll
    for (int m = 0; m < QMV_MAX_ROWS; m++) {
        if (m < rows) { float s = warp_sum(acc[m]); if (lane == 0) store(y, (i64)m * outRows + r, s); }
    }
}
extern "C" __global__ void q8_0_matvec_f32(float* y, const unsigned char* w, const float* x, int rows, int outRows, int inCols) { qmatvec<float, false>(y, w, x, rows, outRows, inCols); }
extern "C" __global__ void q8_0_matvec_bf16(bf16* y, const unsigned char* w, const bf16* x, int rows, int outRows, int inCols) { qmatvec<bf16, false>(y, w, x, rows, outRows, inCols); }
extern "C" __global__ void q4_1_matvec_f32(float* y, const unsigned char* w, const float* x, int rows, int outRows, int inCols) { qmatvec<float, true>(y, w, x, rows, outRows, inCols); }
extern "C" __global__ void q4_1_matvec_bf16(bf16* y, const unsigned char* w, const bf16* x, int rows, int outRows, int inCols) { qmatvec<bf16, true>(y, w, x, rows, outRows, inCols); }
"""#
}
