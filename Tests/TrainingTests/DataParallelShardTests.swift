// The pieces that make a rank's share of a batch exact, without launching ranks: row slices of a batch keep its
// padding and partition its targets; a row-sharded random stream draws exactly the whole batch's values for its
// rows and ends where the whole draw ends; shards cover the micro-batch.
import Foundation
import XCTest
import Collectives
import TensorCore
import Training

final class DataParallelShardTests: XCTestCase {
    func testShardRowsPartitionTheBatch() {
        for rows in 1...9 {
            for ranks in 1...rows {
                let shards = (0..<ranks).map { Trainer.shardRows(rows, rank: $0, ranks: ranks) }
                XCTAssertEqual(shards.first?.lowerBound, 0); XCTAssertEqual(shards.last?.upperBound, rows)
                for (a, b) in zip(shards, shards.dropFirst()) { XCTAssertEqual(a.upperBound, b.lowerBound) }
                XCTAssertLessThanOrEqual((shards.map(\.count).max() ?? 0) - (shards.map(\.count).min() ?? 0), 1)
                XCTAssertTrue(shards.allSatisfy { !$0.isEmpty })
            }
        }
    }

    func testRowSlicesKeepThePaddingAndPartitionTheTargets() {
        func example(_ n: Int, learnt: Int) -> TokenizedExample {
            TokenizedExample(ids: (0..<n).map { Int32($0 + 3) }, labels: (0..<n).map { $0 >= n - learnt ? Int32($0 + 3) : ignoredLabel })
        }
        let batch = TokenBatch(rows: [[example(5, learnt: 2)], [example(9, learnt: 4)], [example(3, learnt: 3)]], paddingID: 0)
        let top = batch.rows(0..<1), rest = batch.rows(1..<3)
        XCTAssertEqual(top.length, 9); XCTAssertEqual(rest.length, 9)
        XCTAssertEqual(top.targetCount + rest.targetCount, batch.targetCount)
        XCTAssertEqual(top.tokenCount + rest.tokenCount, batch.tokenCount)
        XCTAssertEqual(top.inputIDs + rest.inputIDs, batch.inputIDs)
        XCTAssertEqual(top.targets + rest.targets, batch.targets)
        XCTAssertEqual(top.segmentIDs + rest.segmentIDs, batch.segmentIDs)
        XCTAssertEqual(top.attentionMask.array + rest.attentionMask.array, batch.attentionMask.array)
        XCTAssertEqual(rest.attentionMask.shape, [2, 9])
    }

    func testARowShardedStreamDrawsTheWholeBatchsValuesForItsRows() throws {
        let rows = 5, perRow = 6
        var whole = RandomGenerator(seed: 42, position: 7)
        let full = (whole.bernoulli([rows * perRow], probability: 0.7).array, whole.normal([rows, perRow]).array,
                    whole.uniform([rows, 2, 3], low: -1, high: 1).array)
        for (offset, count) in [(0, 2), (2, 3), (4, 1)] {
            var shard = RandomGenerator(seed: 42, position: 7)
            shard.rowShard = try RandomGenerator.RowShard(offset: offset, count: count, total: rows)
            let slice = (offset * perRow)..<((offset + count) * perRow)
            XCTAssertEqual(shard.bernoulli([count * perRow], probability: 0.7).array, Array(full.0[slice]))
            XCTAssertEqual(shard.normal([count, perRow]).array, Array(full.1[slice]))
            XCTAssertEqual(shard.uniform([count, 2, 3], low: -1, high: 1).array, Array(full.2[slice]))
            XCTAssertEqual(shard.position, whole.position, "every rank ends where the whole draw ends")
        }
        XCTAssertThrowsError(try RandomGenerator.RowShard(offset: 4, count: 2, total: 5))
    }

    func testTheDistributedOptionFromFlagsAndConfigFiles() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-dp-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data("model: m.gguf\ndata: d\ndistributed: mpi\n".utf8).write(to: url)
        XCTAssertEqual(try TrainingRunOptions.load(configFile: url).resolved().distributed, .mpi)
        var options = TrainingRunOptions()
        options.model = "m.gguf"; options.data = "d"
        XCTAssertEqual(try options.resolved().distributed, DistributedBackend.none, "one process by default")
        options.distributed = "gloo"
        XCTAssertThrowsError(try options.resolved()) { XCTAssertTrue("\($0)".contains("--distributed"), "\($0)") }
    }
}
