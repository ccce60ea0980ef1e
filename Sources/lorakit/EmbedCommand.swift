import ArgumentParser
import Foundation
import Models
import PEFT
import TensorCore
import Training

/// `lorakit embed`: sentence embeddings of a BERT model (mean pooling over the attention mask, then L2
/// normalisation, as sentence-transformers), optionally with a LoRA adapter, as JSON.
struct Embed: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sentence embeddings of a BERT model (mean pooling + L2 normalisation) as JSON.",
        discussion: """
            Texts come from --text (repeatable) or --file, a JSONL file with one {"text": ...} object (or a JSON \
            string) per line. Output: {"model", "dimension", "normalized", "embeddings": [{"text", "embedding"}]}.
            """)

    @Option(help: "A Hugging Face BERT directory (config.json, model.safetensors, tokenizer.json).") var model: String
    @Option(help: "A text to embed (repeat for several).") var text: [String] = []
    @Option(help: "JSONL file: one {\"text\": ...} or JSON string per line.") var file: String?
    @Option(help: "A PEFT LoRA adapter directory to apply (from lorakit train --task retrieval).") var adapter: String?
    @Option(help: "Longest input in tokens, [CLS] and [SEP] included (default: sentence_bert_config.json's max_seq_length, else 512).") var maxLength: Int?
    @Option(help: "Texts per forward pass.") var batchSize = 32
    @Flag(help: "Leave the mean-pooled vectors unnormalised.") var noNormalize = false

    func validate() throws {
        guard (file == nil) != text.isEmpty else { throw ValidationError("give --text (one or more) or --file, not both") }
        guard batchSize > 0 else { throw ValidationError("--batch-size must be positive, got \(batchSize)") }
        if let maxLength, maxLength < 2 { throw ValidationError("--max-length must be at least 2, got \(maxLength)") }
    }

    func run() throws {
        try BLAS.ensureAvailable()
        let directory = URL(fileURLWithPath: model)
        guard EncoderTrainingRun.isEncoderModel(model) else {
            throw ValidationError("\(model): not a BERT directory (config.json with model_type \"bert\"); embed supports BERT encoders")
        }
        let loaded = try EncoderTaskModel.load(directory: directory, task: .retrieval, labels: nil, seed: 0)
        if let adapter { try AdapterFiles.load(into: loaded.encoder, from: URL(fileURLWithPath: adapter)) }
        let texts = try file.map(Self.readTexts) ?? text
        let limit = try maxLength ?? Self.sentenceTransformersMaxLength(directory) ?? loaded.encoder.config.maxPositions
        guard limit <= loaded.encoder.config.maxPositions else {
            throw ValidationError("--max-length \(limit) exceeds the model's \(loaded.encoder.config.maxPositions) positions")
        }
        var embeddings: [[Float]] = []
        var rng = RandomGenerator(seed: 0)
        for start in stride(from: 0, to: texts.count, by: batchSize) {
            let chunk = Array(texts[start..<min(start + batchSize, texts.count)])
            let encoded = loaded.tokenizer.batch(chunk, maxLength: limit)
            let value = try loaded.encoder.sentenceEmbeddings(
                EncoderBatch(ids: encoded.ids, typeIDs: encoded.typeIDs, attentionMask: encoded.attentionMask), normalize: !noNormalize, rng: &rng).value
            let d = value.shape[1]
            value.withUnsafeBufferPointer { p in for r in 0..<chunk.count { embeddings.append(Array(p[(r * d)..<(r * d + d)])) } }
        }
        let object: [String: Any] = [
            "model": model, "dimension": loaded.encoder.config.hiddenSize, "normalized": !noNormalize, "max_length": limit,
            "embeddings": zip(texts, embeddings).map { ["text": $0, "embedding": $1.map(Double.init)] as [String: Any] },
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        print(String(decoding: data, as: UTF8.self))
    }

    /// Texts of a JSONL file; a bad line is an error naming file and line.
    static func readTexts(_ path: String) throws -> [String] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("\(path): \(FileManager.default.fileExists(atPath: path) ? "cannot read" : "no such file")")
        }
        var texts: [String] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else { continue }
            let value: Any
            do { value = try JSONSerialization.jsonObject(with: Data(trimmed.utf8), options: [.fragmentsAllowed]) } catch {
                throw ValidationError("\(path):\(i + 1): not JSON: \(error.localizedDescription)")
            }
            if let s = value as? String { texts.append(s); continue }
            guard let s = (value as? [String: Any])?["text"] as? String else {
                throw ValidationError("\(path):\(i + 1): expected {\"text\": \"...\"} or a JSON string")
            }
            texts.append(s)
        }
        guard !texts.isEmpty else { throw ValidationError("\(path): no texts") }
        return texts
    }

    /// sentence-transformers' max_seq_length (sentence_bert_config.json), if the directory has one.
    static func sentenceTransformersMaxLength(_ directory: URL) throws -> Int? {
        let url = directory.appendingPathComponent("sentence_bert_config.json")
        guard let data = FileManager.default.contents(atPath: url.path) else { return nil }
        return try JSONValue.parseObject(data, source: url.path)["max_seq_length"]?.intValue
    }
}
