// Inference without autograd: raw buffers, the TensorCore kernels and `AdaptedLinear.apply`, over a KV cache.
// A prompt is one call with all its tokens (projections are GEMMs over dequantised weights); each generated
// token is one call with a single token (projections are quantized matrix-vector products). Same arithmetic
// as the autograd forward, so the two agree to rounding.
import Foundation
import TensorCore
import PEFT

extension LlamaModel {
    /// Runs `tokens` at positions cache.length ..< cache.length + n, appends their keys and values to `cache`,
    /// and returns logits: of the last token [vocab], or of every token [n, vocab] with `allLogits`.
    /// Long prompts run in chunks of `prefillChunkSize` tokens so scratch memory stays bounded (~20 MB for SmolLM2).
    public func forward(tokens: [Int32], cache: KVCache, allLogits: Bool = false) throws -> Tensor {
        guard tokens.count > prefillChunkSize else { return try forwardChunk(tokens, cache: cache, allLogits: allLogits) }
        guard cache.length + tokens.count <= cache.maxLength else {
            throw ModelError.contextOverflow(tokens: cache.length + tokens.count, contextLength: cache.maxLength)
        }
        try validateTokens(tokens)
        var rows: [Float] = []
        var last = Tensor(zeros: [0])
        var start = 0
        while start < tokens.count {
            let end = min(start + max(prefillChunkSize, 1), tokens.count)
            last = try forwardChunk(Array(tokens[start..<end]), cache: cache, allLogits: allLogits)
            if allLogits { rows += last.array }
            start = end
        }
        return allLogits ? Tensor(rows, shape: [tokens.count, config.vocabSize]) : last
    }

    private func forwardChunk(_ tokens: [Int32], cache: KVCache, allLogits: Bool) throws -> Tensor {
        let n = tokens.count
        guard n > 0 else { throw ModelError.invalidArgument(name: "tokens", reason: "need at least one token") }
        let c = config
        guard cache.layerCount == c.layerCount, cache.kvHeadCount == c.kvHeadCount, cache.headDim == c.headDim else {
            throw ModelError.invalidArgument(name: "cache", reason: "built for another model layout")
        }
        try validateTokens(tokens)
        let start = cache.length
        guard start + n <= cache.maxLength else { throw ModelError.contextOverflow(tokens: start + n, contextLength: cache.maxLength) }
        try cache.reserve(start + n)

        let ws = InferenceBuffers(rows: n, config: c)
        embedRows(tokens, into: ws.hidden)
        let table = try RotaryTable(start: start, count: n, dim: c.headDim, theta: c.ropeTheta)
        runLayers(ws, rows: n, table: table) { index in
            cache.store(layer: index, keys: ws.k, values: ws.v, count: n)
            if n == 1 {  // decode: every head in one call against the cache
                decodeAttention(out: ws.attention, q: ws.q, keys: cache.keys(layer: index, head: 0),
                                values: cache.values(layer: index, head: 0), headStride: cache.capacity * c.headDim,
                                queryHeads: c.headCount, kvHeads: c.kvHeadCount, keyLength: start + 1, headDim: c.headDim,
                                scale: 1 / Float(c.headDim).squareRoot())
            } else {
                attendPrompt(ws, cache: cache, layer: index, start: start, rows: n)
            }
        }
        cache.advance(by: tokens)

        // Final norm and head for the rows asked for (prefill only needs the last one).
        let first = allLogits ? 0 : n - 1
        return Tensor(shape: allLogits ? [n, c.vocabSize] : [c.vocabSize]) { out in
            head(ws, rows: first..<n, out: out.baseAddress!)
        }
    }

    /// One decode step of several sequences at once: `tokens[i]` is the next token of the sequence cached in
    /// `caches[i]` (distinct caches, each at its own length). Embeddings, norms and every projection run over all
    /// rows together, so each weight matrix is read once per step for the whole batch; rotary uses each row's own
    /// position, and each row attends to its own cache. Returns logits [rows, vocab], row i for sequence i.
    ///
    /// Per row the arithmetic is that of `forward(tokens: [t], cache:)`: quantized projections use the same row
    /// kernels for up to 7 rows (bit-identical), dense ones a BLAS GEMM over the rows (equal to rounding). Adapters
    /// apply as for any forward: the active ones, or one per row inside `withAdapterNames` (one name per sequence).
    public func forwardBatch(tokens: [Int32], caches: [KVCache]) throws -> Tensor {
        let n = tokens.count, c = config
        guard n > 0 else { throw ModelError.invalidArgument(name: "tokens", reason: "need at least one sequence") }
        guard caches.count == n else {
            throw ModelError.invalidArgument(name: "caches", reason: "\(caches.count) caches for \(n) tokens; give one cache per sequence")
        }
        guard Set(caches.map(ObjectIdentifier.init)).count == n else {
            throw ModelError.invalidArgument(name: "caches", reason: "a cache appears twice; each sequence needs its own")
        }
        for cache in caches {
            guard cache.layerCount == c.layerCount, cache.kvHeadCount == c.kvHeadCount, cache.headDim == c.headDim else {
                throw ModelError.invalidArgument(name: "cache", reason: "built for another model layout")
            }
            guard cache.length + 1 <= cache.maxLength else { throw ModelError.contextOverflow(tokens: cache.length + 1, contextLength: cache.maxLength) }
        }
        try validateTokens(tokens)
        for cache in caches { try cache.reserve(cache.length + 1) }

        let (dh, qw, kvw) = (c.headDim, c.queryWidth, c.kvWidth)
        let ws = InferenceBuffers(rows: n, config: c, decodeOnly: true)
        embedRows(tokens, into: ws.hidden)
        let positions = caches.map(\.length)
        let table = try RotaryTable(positions: positions, dim: dh, theta: c.ropeTheta)
        runLayers(ws, rows: n, table: table) { index in
            for (row, cache) in caches.enumerated() {
                cache.store(layer: index, keys: ws.k + row * kvw, values: ws.v + row * kvw, count: 1)
                decodeAttention(out: ws.attention + row * qw, q: ws.q + row * qw, keys: cache.keys(layer: index, head: 0),
                                values: cache.values(layer: index, head: 0), headStride: cache.capacity * dh,
                                queryHeads: c.headCount, kvHeads: c.kvHeadCount, keyLength: positions[row] + 1, headDim: dh,
                                scale: 1 / Float(dh).squareRoot())
            }
        }
        for (token, cache) in zip(tokens, caches) { cache.advance(by: [token]) }
        return Tensor(shape: [n, c.vocabSize]) { out in head(ws, rows: 0..<n, out: out.baseAddress!) }
    }

    /// The decoder layers over ws.hidden [rows, hidden] (token-major, row r at position table.positions[r]);
    /// `attend(layer)` stores ws.k/ws.v in the cache(s) and writes ws.attention from ws.q.
    private func runLayers(_ ws: InferenceBuffers, rows n: Int, table: RotaryTable, attend: (Int) -> Void) {
        let c = config
        let (d, dh, hq, hkv, inter) = (c.hiddenSize, c.headDim, c.headCount, c.kvHeadCount, c.intermediateSize)
        table.cos.withUnsafeBufferPointer { cosines in table.sin.withUnsafeBufferPointer { sines in
            let cp = cosines.baseAddress!, sp = sines.baseAddress!
            for (index, layer) in layers.enumerated() {
                layer.inputNorm.value.withUnsafeBufferPointer { w in
                    rmsNormForward(out: ws.normed, rstdOut: nil, x: ws.hidden, weight: w.baseAddress!, rows: n, dim: d, eps: c.rmsNormEps)
                }
                let a = layer.attention
                AdaptedLinear.apply([a.qProj, a.kProj, a.vProj], x: ws.normed, rows: n, outputs: [ws.q, ws.k, ws.v])
                for (norm, buffer, count) in [(a.queryNorm, ws.q, hq), (a.keyNorm, ws.k, hkv)] {  // Qwen 3: per-head q/k RMSNorm
                    guard let norm else { continue }
                    norm.value.withUnsafeBufferPointer { w in
                        rmsNormForward(out: buffer, rstdOut: nil, x: buffer, weight: w.baseAddress!, rows: n * count, dim: dh, eps: c.rmsNormEps)
                    }
                }
                // Token-major [n, heads, D] is [batch n, heads, length 1, D] with one position per "batch" row.
                rotaryApply(out: ws.q, x: ws.q, cos: cp, sin: sp, batch: n, heads: hq, length: 1, dim: dh,
                            perBatchPositions: true, layout: .halfSplit, inverse: false)
                rotaryApply(out: ws.k, x: ws.k, cos: cp, sin: sp, batch: n, heads: hkv, length: 1, dim: dh,
                            perBatchPositions: true, layout: .halfSplit, inverse: false)
                attend(index)
                a.oProj.apply(x: ws.attention, rows: n, out: ws.projected)
                InferenceBuffers.add(ws.projected, into: ws.hidden, count: n * d)

                layer.postAttentionNorm.value.withUnsafeBufferPointer { w in
                    rmsNormForward(out: ws.normed, rstdOut: nil, x: ws.hidden, weight: w.baseAddress!, rows: n, dim: d, eps: c.rmsNormEps)
                }
                let m = layer.mlp
                AdaptedLinear.apply([m.gateProj, m.upProj], x: ws.normed, rows: n, outputs: [ws.gate, ws.up])
                InferenceBuffers.swiglu(gate: ws.gate, up: ws.up, count: n * inter)
                m.downProj.apply(x: ws.gate, rows: n, out: ws.projected)
                InferenceBuffers.add(ws.projected, into: ws.hidden, count: n * d)
            }
        } }
    }

    /// Final norm and output head for hidden rows `rows` into out [rows.count, vocab].
    private func head(_ ws: InferenceBuffers, rows: Range<Int>, out: UnsafeMutablePointer<Float>) {
        let d = config.hiddenSize
        norm.value.withUnsafeBufferPointer { w in
            rmsNormForward(out: ws.normed, rstdOut: nil, x: ws.hidden + rows.lowerBound * d, weight: w.baseAddress!,
                           rows: rows.count, dim: d, eps: config.rmsNormEps)
        }
        outputHead.apply(x: ws.normed, rows: rows.count, out: out)
    }

    /// Prompt attention (n > 1 tokens at positions start..<start+n): per kv head, its query heads as
    /// [group, n, D] against the [start + n, D] cached keys, causal. Writes ws.attention [n, heads·D].
    private func attendPrompt(_ ws: InferenceBuffers, cache: KVCache, layer: Int, start: Int, rows n: Int) {
        let (dh, hq, hkv) = (config.headDim, config.headCount, config.kvHeadCount)
        let group = hq / hkv
        let qHeads = ws.transposed(ws.q, rows: n, heads: hq, dim: dh, into: ws.headMajor)
        let shape = AttentionShape(batch: 1, queryHeads: group, kvHeads: 1, queryLength: n, keyLength: start + n,
                                   headDim: dh, causal: true)
        for g in 0..<hkv {
            attentionForward(out: ws.headMajorOut + g * group * n * dh, logSumExp: nil, q: qHeads + g * group * n * dh,
                             k: cache.keys(layer: layer, head: g), v: cache.values(layer: layer, head: g),
                             keyPaddingMask: nil, shape: shape)
        }
        ws.untransposed(ws.headMajorOut, rows: n, heads: hq, dim: dh, into: ws.attention)
    }

    /// Embedding rows for ids (already validated) into out [ids.count, hidden].
    func embedRows(_ ids: [Int32], into out: UnsafeMutablePointer<Float>) {
        let d = config.hiddenSize
        switch embedding {
        case .dense(let table):
            table.value.withUnsafeBufferPointer { t in
                for (i, id) in ids.enumerated() { (out + i * d).update(from: t.baseAddress! + Int(id) * d, count: d) }
            }
        case .quantized(let q):
            for (i, id) in ids.enumerated() { q.dequantizeRows(Int(id)..<(Int(id) + 1), into: out + i * d) }
        }
    }
}

/// Scratch buffers for one inference call of `rows` tokens, freed when the call ends.
final class InferenceBuffers {
    /// [rows, hidden]: residual stream, its normalised copy, a projection output.
    let hidden, normed, projected: UnsafeMutablePointer<Float>
    /// [rows, heads·D], [rows, kvHeads·D] ×2, attention output [rows, heads·D].
    let q, k, v, attention: UnsafeMutablePointer<Float>
    /// Head-major copies [heads, rows, D] of queries and attention outputs (prefill only; else aliases of q/attention).
    let headMajor, headMajorOut: UnsafeMutablePointer<Float>
    /// [rows, intermediate] ×2.
    let gate, up: UnsafeMutablePointer<Float>
    /// Every buffer this call owns with its element count (headMajor/headMajorOut alias q/attention at one row).
    private let owned: [(pointer: UnsafeMutablePointer<Float>, count: Int)]

    /// `decodeOnly`: rows are separate sequences' single tokens (no prompt attention, so no head-major copies).
    init(rows: Int, config c: LlamaConfig, decodeOnly: Bool = false) {
        // From the buffer pool: a prompt's scratch is reused by the next prompt instead of faulted in afresh.
        var owned: [(pointer: UnsafeMutablePointer<Float>, count: Int)] = []
        func buffer(_ width: Int) -> UnsafeMutablePointer<Float> {
            let count = max(1, rows * width)
            owned.append((BufferPool.allocateScratch(count: count), count))
            return owned[owned.count - 1].pointer
        }
        hidden = buffer(c.hiddenSize); normed = buffer(c.hiddenSize); projected = buffer(c.hiddenSize)
        q = buffer(c.queryWidth); k = buffer(c.kvWidth); v = buffer(c.kvWidth); attention = buffer(c.queryWidth)
        headMajor = rows > 1 && !decodeOnly ? buffer(c.queryWidth) : q
        headMajorOut = rows > 1 && !decodeOnly ? buffer(c.queryWidth) : attention
        gate = buffer(c.intermediateSize); up = buffer(c.intermediateSize)
        self.owned = owned
    }

    deinit { for (p, count) in owned { BufferPool.releaseScratch(p, count: count) } }

    /// [rows, heads, D] → [heads, rows, D]; returns `out`.
    func transposed(_ x: UnsafePointer<Float>, rows: Int, heads: Int, dim: Int, into out: UnsafeMutablePointer<Float>) -> UnsafeMutablePointer<Float> {
        for t in 0..<rows { for h in 0..<heads { (out + (h * rows + t) * dim).update(from: x + (t * heads + h) * dim, count: dim) } }
        return out
    }

    /// [heads, rows, D] → [rows, heads, D].
    func untransposed(_ x: UnsafePointer<Float>, rows: Int, heads: Int, dim: Int, into out: UnsafeMutablePointer<Float>) {
        for t in 0..<rows { for h in 0..<heads { (out + (t * heads + h) * dim).update(from: x + (h * rows + t) * dim, count: dim) } }
    }

    /// y += x.
    static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }

    /// gate ← silu(gate) ⊙ up, in parallel chunks.
    static func swiglu(gate: UnsafeMutablePointer<Float>, up: UnsafePointer<Float>, count: Int) {
        Parallel.forRanges(count, minChunk: transcendentalParallelChunk) { r in
            for i in r { let a = gate[i]; gate[i] = a / (1 + Foundation.exp(-a)) * up[i] }
        }
    }
}
