import ArgumentParser
import Foundation
import Models
import PEFT
import Training

/// `lorakit eval` on a BERT directory: classification accuracy ({"text", "label"}; the adapter carries the classifier
/// and labels.json) or retrieval recall@1/@5 and MRR ({"anchor", "positive"}; base model or with an adapter).
func evaluateEncoder(model: String, data: String, adapter: String?, batchSize: Int, maxLength: Int, limit: Int, json: Bool) throws {
    let dataURL = URL(fileURLWithPath: data), modelURL = URL(fileURLWithPath: model)
    let task = try EncoderTask.of(dataURL)
    let metrics: EncoderMetrics
    switch task {
    case .classification:
        guard let adapter else {
            throw ValidationError("\(data) is classification data: give --adapter, the directory `lorakit train` wrote (its classifier head and labels.json)")
        }
        let adapterURL = URL(fileURLWithPath: adapter)
        let labels = try LabelSet.load(from: adapterURL)
        let loaded = try EncoderTaskModel.load(directory: modelURL, task: .classification, labels: labels, seed: 0)
        try AdapterFiles.load(into: loaded.classifier!, from: adapterURL)
        var file = try ClassificationDataFile.load(dataURL)
        if limit > 0 { file = file.prefix(limit) }
        metrics = .classification(try EncoderEvaluation.classification(loaded.classifier!, tokenizer: loaded.tokenizer, file: file, labels: labels,
                                                                       maxLength: maxLength, batchSize: batchSize))
    case .retrieval:
        let loaded = try EncoderTaskModel.load(directory: modelURL, task: .retrieval, labels: nil, seed: 0)
        if let adapter { try AdapterFiles.load(into: loaded.encoder, from: URL(fileURLWithPath: adapter)) }
        var file = try RetrievalDataFile.load(dataURL)
        if limit > 0 { file = file.prefix(limit) }
        metrics = .retrieval(try EncoderEvaluation.retrieval(loaded.encoder, tokenizer: loaded.tokenizer, file: file, maxLength: maxLength,
                                                             batchSize: batchSize))
    }
    if json {
        var object = metrics.json
        object["task"] = task.rawValue
        if case .classification(let m) = metrics, let classifier = try? LabelSet.load(from: URL(fileURLWithPath: adapter!)) {
            object["predictions"] = m.predictions.map { classifier.names[$0] }
            object["logits"] = m.logits.map { $0.map(Double.init) }
        }
        let out = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        print(String(decoding: out, as: UTF8.self))
    } else {
        print("\(data): \(task.rawValue), \(metrics.summary)")
    }
}
