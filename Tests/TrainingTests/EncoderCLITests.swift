// The `lorakit` executable on all-MiniLM-L6-v2 (skipped when not downloaded): `embed` prints
// sentence-transformers' embeddings, `train` rejects a valid label the training split lacks (file and line named),
// and a short classification run's adapter evaluates with `eval`, which agrees with the library.
import Foundation
import XCTest
import Formats
import Training
import TestSupport

final class EncoderCLITests: XCTestCase {
    let model = Fixtures.modelsDirectory.appendingPathComponent("minilm")

    func lorakit(_ arguments: [String], in directory: URL) throws -> (status: Int32, stdout: String, stderr: String) {
        guard FileManager.default.fileExists(atPath: model.appendingPathComponent("model.safetensors").path) else {
            throw XCTSkip("\(model.path) not present (run scripts/fetch-models.sh)")
        }
        let exe = try XCTUnwrap(LoRAKitCLITests.executable, "lorakit not found next to the test bundle")
        let out = directory.appendingPathComponent("stdout-\(UUID().uuidString)"), err = directory.appendingPathComponent("stderr-\(UUID().uuidString)")
        FileManager.default.createFile(atPath: out.path, contents: nil); FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = exe
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, try String(contentsOf: out, encoding: .utf8), try String(contentsOf: err, encoding: .utf8))
    }

    func testEmbedPrintsReferenceEmbeddings() throws {
        let dir = try temporaryDirectory(self, "embed")
        let sentences = (try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("minilm/sentences.json"))) as! [String: Any])["sentences"] as! [String]
        let run = try lorakit(["embed", "--model", model.path, "--text", sentences[0], "--text", sentences[3]], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        let o = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(o["dimension"] as? Int, 384)
        let rows = (o["embeddings"] as! [[String: Any]]).map { ($0["embedding"] as! [Double]).map(Float.init) }
        let expected = try SafeTensorsFile(contentsOf: Fixtures.url("minilm/embeddings.safetensors")).tensor("embeddings")
        for (row, index) in [(0, 0), (1, 3)] {
            let worst = (0..<384).map { abs(rows[row][$0] - expected[index, $0]) }.max()!
            XCTAssertLessThan(worst, 1e-5)
        }
        let file = dir.appendingPathComponent("texts.jsonl")
        try Data("{\"text\": \"a\"}\nnot json\n".utf8).write(to: file)
        let bad = try lorakit(["embed", "--model", model.path, "--file", file.path], in: dir)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("texts.jsonl:2"), bad.stderr)
    }

    func testTrainRejectsMismatchedLabelsAndEvalAgrees() throws {
        let dir = try temporaryDirectory(self, "encoder-cli")
        let data = dir.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        let train = (0..<8).map { #"{"text": "the food was \#($0 % 2 == 0 ? "good" : "bad")", "label": "\#($0 % 2 == 0 ? "positive" : "negative")"}"# }
        try Data(train.joined(separator: "\n").utf8).write(to: data.appendingPathComponent("train.jsonl"))
        try Data(#"{"text": "fine", "label": "positive"}"# .appending("\n{\"text\": \"meh\", \"label\": \"neutral\"}\n").utf8)
            .write(to: data.appendingPathComponent("valid.jsonl"))
        let bad = try lorakit(["train", "--model", model.path, "--data", data.path, "--out", dir.appendingPathComponent("a").path, "--iters", "2"], in: dir)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("valid.jsonl:2: label \"neutral\" is not one of the 2 labels"), bad.stderr)

        try Data(train.prefix(4).joined(separator: "\n").utf8).write(to: data.appendingPathComponent("valid.jsonl"))
        let out = dir.appendingPathComponent("adapter")
        let run = try lorakit(["train", "--model", model.path, "--data", data.path, "--out", out.path, "--iters", "3", "--batch-size", "4",
                               "--learning-rate", "1e-3", "--targets", "query,value"], in: dir)
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertTrue(run.stdout.contains("after training, valid: accuracy"), run.stdout)
        let eval = try lorakit(["eval", "--model", model.path, "--adapter", out.path, "--data", data.appendingPathComponent("valid.jsonl").path, "--json"], in: dir)
        XCTAssertEqual(eval.status, 0, eval.stderr)
        let o = try JSONSerialization.jsonObject(with: Data(eval.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(o["task"] as? String, "classification")
        XCTAssertEqual((o["logits"] as? [[Double]])?.count, 4)
        let reported = run.stdout.components(separatedBy: "after training, valid: accuracy ").last!.prefix(while: { $0 != "%" })
        XCTAssertEqual(Double(reported)!, 100 * (o["accuracy"] as! Double), accuracy: 0.05)
        let noAdapter = try lorakit(["eval", "--model", model.path, "--data", data.appendingPathComponent("valid.jsonl").path], in: dir)
        XCTAssertNotEqual(noAdapter.status, 0)
    }
}
