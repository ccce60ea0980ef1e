// A batch as a model consumes it: rows of token ids padded on the right to one length, with the masks the
// forward pass and the loss need. Several short examples may share a row (packing); `segmentIDs` tells them apart.
import TensorCore
import Tokenizers

/// Token ids, labels and masks for `rows` sequences of `length` tokens, row-major.
public struct TokenBatch: Sendable {
    public let rows: Int
    public let length: Int
    /// [rows·length] token ids; padding positions hold the padding id.
    public let inputIDs: [Int32]
    /// [rows·length] Hugging Face labels (unshifted): the id where the token is learnt, −100 elsewhere and in padding.
    public let labels: [Int32]
    /// [rows, length]: 1 for real tokens, 0 for padding (for `additiveKeyPaddingMask`).
    public let attentionMask: Tensor
    /// [rows·length]: 0 for padding, 1, 2, … for the examples packed into a row, in order. Without packing every
    /// real token has segment 1. A model with block-diagonal attention can keep packed examples apart; one with
    /// key-padding masks only lets an example attend to the ones before it in its row (TRL's classic packing).
    public let segmentIDs: [Int32]
    /// [rows·length] the loss targets after the shift: position t predicts labels[t + 1] when token t + 1 belongs
    /// to the same example, else −100. Feed these with the hidden states [rows·length, dim] to `linearCrossEntropy`.
    public let targets: [Int32]
    /// Number of targets ≠ −100: the denominator of the batch's mean loss.
    public let targetCount: Int
    /// Number of real (non-padding) tokens.
    public let tokenCount: Int

    /// Lays out `rows` (each a list of examples placed one after another) padded to the longest row, or to
    /// `length` when given (which must be at least as long).
    public init(rows layout: [[TokenizedExample]], paddingID: Int32, length: Int? = nil) {
        let longest = layout.map { $0.reduce(0) { $0 + $1.ids.count } }.max() ?? 0
        let width = length ?? longest
        precondition(width >= longest, "batch length \(width) is shorter than its longest row (\(longest))")
        let n = layout.count * width
        var ids = [Int32](repeating: paddingID, count: n)
        var labels = [Int32](repeating: ignoredLabel, count: n)
        var segments = [Int32](repeating: 0, count: n)
        var mask = [Float](repeating: 0, count: n)
        for (r, examples) in layout.enumerated() {
            var t = r * width
            for (s, example) in examples.enumerated() {
                for k in example.ids.indices {
                    ids[t] = example.ids[k]; labels[t] = example.labels[k]
                    segments[t] = Int32(s + 1); mask[t] = 1
                    t += 1
                }
            }
        }
        var targets = [Int32](repeating: ignoredLabel, count: n)
        var count = 0
        for r in 0..<layout.count {
            let base = r * width
            for t in 0..<max(width - 1, 0) where segments[base + t] != 0 && segments[base + t + 1] == segments[base + t] {
                let label = labels[base + t + 1]
                targets[base + t] = label
                if label != ignoredLabel { count += 1 }
            }
        }
        rows = layout.count; self.length = width
        inputIDs = ids; self.labels = labels; segmentIDs = segments
        attentionMask = Tensor(mask, shape: [layout.count, width])
        self.targets = targets; targetCount = count
        tokenCount = mask.reduce(0) { $0 + Int($1) }
    }
}

/// Where a sampler stands: the epoch and the number of rows of that epoch already handed out.
public struct DataPosition: Equatable, Sendable, CustomStringConvertible {
    public var epoch: Int
    public var offset: Int

    /// A position; (0, 0) is the start.
    public init(epoch: Int = 0, offset: Int = 0) { self.epoch = epoch; self.offset = offset }

    public var description: String { "epoch \(epoch), row \(offset)" }
}

/// Endless, reproducible batches from a dataset: each epoch is a seeded permutation of the examples (the same
/// for a given seed and epoch, whatever happened before), optionally packed greedily into rows of a fixed length.
/// The whole state is a `DataPosition`, so a checkpoint resumes the stream exactly.
public struct BatchSampler {
    public let dataset: TokenizedDataset
    /// Rows per batch (examples per batch without packing).
    public let batchRows: Int
    public let seed: UInt64
    public let shuffle: Bool
    /// nil: one example per row, padded to the batch's longest; else examples share rows up to this many tokens.
    public let packLength: Int?
    public let paddingID: Int32
    public private(set) var position: DataPosition
    private var epochRows: [[Int]] = []
    private var cachedEpoch = -1

    /// Throws for a non-positive batch size or a pack length shorter than the longest example.
    public init(dataset: TokenizedDataset, batchRows: Int, seed: UInt64, shuffle: Bool = true, packLength: Int? = nil,
                paddingID: Int32, position: DataPosition = DataPosition()) throws {
        guard batchRows > 0 else { throw TrainingDataError.invalidOption(name: "batch size", reason: "\(batchRows) must be positive") }
        if let packLength {
            let longest = dataset.examples.map(\.ids.count).max() ?? 0
            guard packLength >= longest else {
                throw TrainingDataError.invalidOption(name: "pack length", reason: "\(packLength) is shorter than the longest example (\(longest) tokens)")
            }
        }
        guard position.epoch >= 0, position.offset >= 0 else {
            throw TrainingDataError.invalidOption(name: "data position", reason: "\(position) is negative")
        }
        self.dataset = dataset; self.batchRows = batchRows; self.seed = seed; self.shuffle = shuffle
        self.packLength = packLength; self.paddingID = paddingID; self.position = position
        loadEpoch(position.epoch)
        guard position.offset <= epochRows.count else {
            throw TrainingDataError.invalidOption(name: "data position", reason: "\(position) is past the epoch's \(epochRows.count) rows")
        }
    }

    /// Example order of one epoch: a permutation seeded by (seed, epoch), or 0..<n without shuffling.
    public func order(epoch: Int) -> [Int] {
        let n = dataset.examples.count
        guard shuffle else { return Array(0..<n) }
        var rng = RandomGenerator(seed: seed).derived(UInt64(epoch))
        return rng.permutation(n)
    }

    /// The rows of one epoch: example indices per row.
    public func rows(epoch: Int) -> [[Int]] {
        let order = order(epoch: epoch)
        guard let limit = packLength else { return order.map { [$0] } }
        var rows: [[Int]] = [], current: [Int] = [], used = 0
        for i in order {
            let n = dataset.examples[i].ids.count
            if used + n > limit && !current.isEmpty { rows.append(current); current = []; used = 0 }
            current.append(i); used += n
        }
        if !current.isEmpty { rows.append(current) }
        return rows
    }

    private mutating func loadEpoch(_ epoch: Int) {
        guard epoch != cachedEpoch else { return }
        epochRows = rows(epoch: epoch)
        cachedEpoch = epoch
    }

    /// The next `batchRows` rows, continuing into the next epoch when this one runs out.
    public mutating func next() -> TokenBatch {
        var layout: [[TokenizedExample]] = []
        while layout.count < batchRows {
            if position.offset >= epochRows.count {
                position = DataPosition(epoch: position.epoch + 1, offset: 0)
                loadEpoch(position.epoch)
            }
            layout.append(epochRows[position.offset].map { dataset.examples[$0] })
            position.offset += 1
        }
        return TokenBatch(rows: layout, paddingID: paddingID, length: packLength)
    }

    /// Every example once, in file order, in batches of `batchRows` (the last may be smaller): for evaluation.
    public static func sequentialBatches(_ dataset: TokenizedDataset, batchRows: Int, paddingID: Int32) -> [TokenBatch] {
        stride(from: 0, to: dataset.examples.count, by: max(batchRows, 1)).map { start in
            let rows = dataset.examples[start..<min(start + max(batchRows, 1), dataset.examples.count)].map { [$0] }
            return TokenBatch(rows: rows, paddingID: paddingID)
        }
    }
}

extension Tokenizer {
    /// The id batches are padded with: the tokenizer's padding token, else its EOS, else 0 (padding is never learnt).
    public var batchPaddingID: Int32 { Int32(specialTokenIDs.padding ?? specialTokenIDs.eos ?? 0) }
}
