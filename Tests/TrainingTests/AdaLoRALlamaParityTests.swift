// PEFT's AdaLoRA adapter (llama_adalora: init_r 6 → target_r 2 after 8 AdamW steps, pruned to ranks 0, 5, 0, 3)
// on the tiny Hugging Face Llama: logits with the adapter and after merging match transformers + PEFT.
import XCTest
import TensorCore
import Autograd
import Formats
import PEFT
import Models
import TestSupport

final class AdaLoRALlamaParityTests: XCTestCase {
    func inputRows(_ file: SafeTensorsFile) throws -> [[Int32]] {
        let ids = try file.int32s("input")
        return [Array(ids[0..<8]), Array(ids[8..<16])]
    }

    /// Issue 5, item 5: adapted_out and merged_out within 1e-5, from PEFT's pruned (rank-0 included) adapter.
    func testAdaptedAndMergedLogitsMatchPEFT() throws {
        let model = try ModelLoader.load(Fixtures.url("peft/base_llama")).model
        let io = try SafeTensorsFile(contentsOf: Fixtures.url("peft/llama_adalora/io.safetensors"))
        let rows = try inputRows(io)
        XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), try io.tensor("base_out")), 1e-5)
        guard case .adalora = try AdapterFiles.load(into: model, from: Fixtures.url("peft/llama_adalora/adapter")) else {
            return XCTFail("expected an AdaLoRA adapter")
        }
        XCTAssertEqual(model.adaLoRARanks(), ["model.layers.0.self_attn.q_proj": 0, "model.layers.0.self_attn.v_proj": 5,
                                              "model.layers.1.self_attn.q_proj": 0, "model.layers.1.self_attn.v_proj": 3])
        let adapted = try io.tensor("adapted_out")
        XCTAssertGreaterThan(maxAbsDifference(adapted, try io.tensor("base_out")), 0.1)  // the adapter matters (0.22)
        XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), adapted), 1e-5)
        try model.mergeAdapters()
        XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), try io.tensor("merged_out")), 1e-5)
        model.unmergeAdapters()
        XCTAssertLessThan(maxAbsDifference(try model.logits(ids: rows), adapted), 1e-5)
    }
}
