// A batch's rows as their own batch, for data parallelism: each rank computes on its rows of the global batch.
// The slice keeps the batch's padded length, so a row's tokens, masks and targets (and, with a `RowShard` on the
// random stream, its dropout masks) are exactly those the whole batch has for it.
import TensorCore

extension TokenBatch {
    /// Rows `range` of this batch, padded to the same length. Targets never cross rows, so the slices of a batch
    /// partition its targets: their `targetCount`s add up to the batch's.
    public func rows(_ range: Range<Int>) -> TokenBatch {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows, "rows \(range) of a \(rows)-row batch")
        let lo = range.lowerBound * length, hi = range.upperBound * length
        let maskValues = attentionMask.array
        return TokenBatch(rows: range.count, length: length, inputIDs: Array(inputIDs[lo..<hi]), labels: Array(labels[lo..<hi]),
                          attentionMask: Tensor(Array(maskValues[lo..<hi]), shape: [range.count, length]),
                          segmentIDs: Array(segmentIDs[lo..<hi]), targets: Array(targets[lo..<hi]))
    }

    /// Assembles a batch from laid-out arrays ([rows·length] each), counting targets and real tokens.
    init(rows: Int, length: Int, inputIDs: [Int32], labels: [Int32], attentionMask: Tensor, segmentIDs: [Int32], targets: [Int32]) {
        self.rows = rows; self.length = length
        self.inputIDs = inputIDs; self.labels = labels; self.attentionMask = attentionMask
        self.segmentIDs = segmentIDs; self.targets = targets
        targetCount = targets.reduce(0) { $0 + ($1 != ignoredLabel ? 1 : 0) }
        tokenCount = segmentIDs.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }
    }
}
