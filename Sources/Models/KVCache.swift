// Keys and values of the tokens processed so far, per layer, so a decode step computes attention for one new
// token against every earlier one without recomputing them. Keys are cached after RoPE (at their absolute
// positions), so a cached key never changes.
//
// Layout per layer: [kvHeads, capacity, headDim], so each kv head's keys are a contiguous [length, headDim]
// block that the attention kernels read directly. Capacity grows by doubling up to the context length: a short
// chat holds a few MB, not the 377 MB a full 8192-token SmolLM2 context would take.
import TensorCore

/// Per-layer key/value memory for one sequence (batch 1).
public final class KVCache {
    public let layerCount: Int
    public let kvHeadCount: Int
    public let headDim: Int
    /// Most positions the cache may hold: the model's context length.
    public let maxLength: Int
    /// Positions cached so far (the next token's position).
    public private(set) var length = 0
    /// Positions the buffers currently have room for.
    public private(set) var capacity = 0
    /// The ids whose keys and values are cached, in order (lets a chat reuse a shared prefix).
    public private(set) var tokens: [Int32] = []

    private var keys: [UnsafeMutablePointer<Float>] = []
    private var values: [UnsafeMutablePointer<Float>] = []

    /// An empty cache for `config`'s layout; `maxLength` defaults to the context length.
    public init(config: LlamaConfig, maxLength: Int? = nil) {
        layerCount = config.layerCount; kvHeadCount = config.kvHeadCount; headDim = config.headDim
        self.maxLength = min(maxLength ?? config.contextLength, config.contextLength)
    }

    deinit { release() }

    private func release() {
        for p in keys { p.deallocate() }
        for p in values { p.deallocate() }
        keys = []; values = []
    }

    /// Bytes held by the key/value buffers.
    public var byteCount: Int { 2 * layerCount * kvHeadCount * capacity * headDim * MemoryLayout<Float>.stride }

    /// Forgets everything from position `newLength` on (a chat rewinding to a shared prefix).
    public func truncate(to newLength: Int) {
        length = max(0, min(newLength, length))
        tokens.removeLast(tokens.count - length)
    }

    /// Makes room for `total` positions (≤ maxLength), copying what is cached into larger buffers if needed.
    func reserve(_ total: Int) throws {
        guard total <= maxLength else { throw ModelError.contextOverflow(tokens: total, contextLength: maxLength) }
        guard total > capacity else { return }
        var newCapacity = max(capacity, 256)
        while newCapacity < total { newCapacity *= 2 }
        newCapacity = min(newCapacity, maxLength)
        let block = headDim * newCapacity
        var newKeys: [UnsafeMutablePointer<Float>] = [], newValues: [UnsafeMutablePointer<Float>] = []
        for layer in 0..<layerCount {
            let k = UnsafeMutablePointer<Float>.allocate(capacity: kvHeadCount * block)
            let v = UnsafeMutablePointer<Float>.allocate(capacity: kvHeadCount * block)
            if length > 0 {
                for g in 0..<kvHeadCount {
                    (k + g * block).update(from: keys[layer] + g * headDim * capacity, count: length * headDim)
                    (v + g * block).update(from: values[layer] + g * headDim * capacity, count: length * headDim)
                }
            }
            newKeys.append(k); newValues.append(v)
        }
        release()
        keys = newKeys; values = newValues; capacity = newCapacity
    }

    /// Keys of kv head `head` in `layer`: [capacity, headDim], rows 0..<length valid.
    func keys(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { keys[layer] + head * capacity * headDim }
    func values(layer: Int, head: Int) -> UnsafeMutablePointer<Float> { values[layer] + head * capacity * headDim }

    /// Writes `count` new positions starting at `length` for one layer. k, v: [count, kvHeads·headDim].
    func store(layer: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>, count: Int) {
        let width = kvHeadCount * headDim
        for g in 0..<kvHeadCount {
            let kd = keys(layer: layer, head: g) + length * headDim, vd = values(layer: layer, head: g) + length * headDim
            for t in 0..<count {
                (kd + t * headDim).update(from: k + t * width + g * headDim, count: headDim)
                (vd + t * headDim).update(from: v + t * width + g * headDim, count: headDim)
            }
        }
    }

    /// Records that `ids` were stored in every layer.
    func advance(by ids: [Int32]) {
        length += ids.count
        tokens += ids
    }
}
