// all-MiniLM-L6-v2 against transformers / sentence-transformers: last_hidden_state of one sentence
// (hidden_s0.safetensors, ≤ 1e-4) and the mean-pooled, L2-normalised embeddings of the six fixture sentences as
// one padded batch (embeddings.safetensors, ≤ 1e-5). Skipped when the model is not downloaded.
import Foundation
import XCTest
import TensorCore
import Autograd
import Formats
import Models
import Tokenizers
import TestSupport

enum MiniLM {
    static let directory = Fixtures.modelsDirectory.appendingPathComponent("minilm")
    static let loaded: Result<BertModel, Error> = Result { try BertModel.load(directory: directory) }
    static func load() throws -> BertModel {
        guard FileManager.default.fileExists(atPath: directory.appendingPathComponent("model.safetensors").path) else {
            throw XCTSkip("\(directory.path) not present (run scripts/fetch-models.sh)")
        }
        return try loaded.get()
    }
    static func tokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(huggingFaceTokenizer: directory.appendingPathComponent("tokenizer.json"))
    }
}

final class BertParityTests: XCTestCase {
    func testConfigAndShapes() throws {
        let model = try MiniLM.load()
        XCTAssertEqual(model.config, BertConfig())
        XCTAssertEqual(model.adaptedLinears.count, 6 * 6 + 1)
        XCTAssertEqual(model.adaptedLinears[0].path, "encoder.layer.0.attention.self.query")
        XCTAssertEqual(model.adaptedLinears.last?.path, "pooler.dense")
    }

    func testLastHiddenStateMatchesTransformers() throws {
        let model = try MiniLM.load()
        let file = try SafeTensorsFile(contentsOf: Fixtures.url("minilm/hidden_s0.safetensors"))
        func ids(_ name: String) throws -> [[Int32]] {
            let t = try file.tensor(name)
            return [(0..<t.count).map { Int32(t[flat: $0]) }]
        }
        let batch = EncoderBatch(ids: try ids("input_ids"), typeIDs: try ids("token_type_ids"), attentionMask: try ids("attention_mask"))
        var rng = RandomGenerator(seed: 0)
        let hidden = try model.forward(batch, rng: &rng)
        let expected = try file.tensor("last_hidden_state")
        XCTAssertLessThan(maxAbsDifference(hidden.value, expected.reshaped([8, 384])), 1e-4)
    }

    func testSentenceEmbeddingsMatchSentenceTransformers() throws {
        let model = try MiniLM.load()
        let tokenizer = try MiniLM.tokenizer()
        let o = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("minilm/sentences.json"))) as! [String: Any]
        let sentences = o["sentences"] as! [String]
        let encoded = tokenizer.batch(sentences, maxLength: 256)
        XCTAssertEqual(encoded.length, 42)  // padded: the mask must keep padding out of attention and the mean
        var rng = RandomGenerator(seed: 0)
        let embeddings = try model.sentenceEmbeddings(EncoderBatch(ids: encoded.ids, typeIDs: encoded.typeIDs, attentionMask: encoded.attentionMask), rng: &rng)
        let expected = try SafeTensorsFile(contentsOf: Fixtures.url("minilm/embeddings.safetensors")).tensor("embeddings")
        XCTAssertLessThan(maxAbsDifference(embeddings.value, expected), 1e-5)
        // Each sentence alone (no padding) gives the same embedding.
        for i in [0, 5] {
            let single = tokenizer.batch([sentences[i]], maxLength: 256)
            let e = try model.sentenceEmbeddings(EncoderBatch(ids: single.ids), rng: &rng)
            XCTAssertLessThan(maxAbsDifference(e.value, expected.rows(i..<(i + 1))), 1e-5)
        }
    }
}

extension Tensor {
    /// Rows `range` of a [rows, dim] tensor.
    func rows(_ range: Range<Int>) -> Tensor {
        let d = shape[1]
        return Tensor((range.lowerBound * d..<range.upperBound * d).map { self[flat: $0] }, shape: [range.count, d])
    }
}
