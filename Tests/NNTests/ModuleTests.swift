import XCTest
import Autograd
import NN
import TensorCore
import TestSupport

/// A toy block shaped like a Llama layer's naming: self_attn.q_proj, mlp.down_proj, dropout.
final class ToyAttention: Module {
    let qProj: Linear, vProj: Linear
    var isTraining = true
    init(rng: inout RandomGenerator) {
        qProj = Linear(inFeatures: 4, outFeatures: 4, bias: false, rng: &rng)
        vProj = Linear(inFeatures: 4, outFeatures: 2, rng: &rng)
    }
    var localParameters: [(String, Variable)] { [] }
    var children: [(String, any Module)] { [("q_proj", qProj), ("v_proj", vProj)] }
}

final class ToyBlock: Module {
    let attention: ToyAttention, dropout: Dropout
    let scaleWeight = Variable(Tensor(repeating: 1, shape: [4]), requiresGrad: true)
    var isTraining = true
    init(rng: inout RandomGenerator) throws {
        attention = ToyAttention(rng: &rng)
        dropout = try Dropout(probability: 0.1)
    }
    var localParameters: [(String, Variable)] { [("scale", scaleWeight)] }
    var children: [(String, any Module)] { [("self_attn", attention), ("dropout", dropout)] }
}

final class ToyModel: Module {
    let embed: Embedding, layers: ModuleList<ToyBlock>, lmHead: Linear
    var isTraining = true
    init() throws {
        var rng = RandomGenerator(seed: 3)
        embed = Embedding(count: 10, dimension: 4, rng: &rng)
        layers = ModuleList([try ToyBlock(rng: &rng), try ToyBlock(rng: &rng)])
        lmHead = try Linear(weight: embed.weight.value)
        lmHead.weight = embed.weight  // tied, as in SmolLM2: listed once, under its first name
    }
    var localParameters: [(String, Variable)] { [] }
    var children: [(String, any Module)] { [("embed_tokens", embed), ("layers", layers), ("lm_head", lmHead)] }
}

final class ModuleTests: XCTestCase {
    func testNamedParametersUseHuggingFaceDottedNames() throws {
        let model = try ToyModel()
        let names = model.namedParameters().map(\.0)
        XCTAssertEqual(names, [
            "embed_tokens.weight",
            "layers.0.scale", "layers.0.self_attn.q_proj.weight", "layers.0.self_attn.v_proj.weight", "layers.0.self_attn.v_proj.bias",
            "layers.1.scale", "layers.1.self_attn.q_proj.weight", "layers.1.self_attn.v_proj.weight", "layers.1.self_attn.v_proj.bias",
        ])
        XCTAssertFalse(names.contains("lm_head.weight"), "the tied head is not listed a second time")
        XCTAssertEqual(model.parameterCount(), 40 + 2 * (4 + 16 + 8 + 2))
        XCTAssertTrue(model.namedModules().map(\.0).contains("layers.1.self_attn.v_proj"))
    }

    func testTrainEvalReachesEveryModuleAndFreezing() throws {
        let model = try ToyModel()
        model.eval()
        XCTAssertTrue(model.namedModules().allSatisfy { !$0.1.isTraining })
        XCTAssertFalse(model.layers[1].dropout.isTraining)
        model.train()
        XCTAssertTrue(model.layers[0].attention.vProj.isTraining)
        model.setRequiresGrad(false)
        model.layers[0].attention.qProj.isFrozen = false
        XCTAssertEqual(model.trainableParameters().map(\.0), ["layers.0.self_attn.q_proj.weight"])
        XCTAssertEqual(model.parameterCount(trainableOnly: true), 16)
    }

    func testStateDictRoundTripAndStrictErrors() throws {
        let a = try ToyModel(), b = try ToyModel()
        for (_, p) in b.namedParameters() { p.value = p.value.scaled(by: 2) }
        try a.load(stateDict: b.stateDict())
        for ((na, pa), (_, pb)) in zip(a.namedParameters(), b.namedParameters()) { XCTAssertEqual(pa.value, pb.value, na) }
        var partial = b.stateDict()
        partial["layers.0.scale"] = nil
        XCTAssertThrowsError(try a.load(stateDict: partial)) { XCTAssertEqual($0 as? NNError, .missingKey("layers.0.scale")) }
        let result = try a.load(stateDict: partial, strict: false)
        XCTAssertEqual(result.missing, ["layers.0.scale"])
        var extra = b.stateDict()
        extra["layers.9.scale"] = Tensor(zeros: [4])
        XCTAssertThrowsError(try a.load(stateDict: extra)) { XCTAssertEqual($0 as? NNError, .unexpectedKey("layers.9.scale")) }
        var wrong = b.stateDict()
        wrong["layers.0.scale"] = Tensor(zeros: [5])
        XCTAssertThrowsError(try a.load(stateDict: wrong)) {
            XCTAssertEqual($0 as? NNError, .shapeMismatch(name: "layers.0.scale", expected: [4], got: [5]))
        }
    }

    func testLinearDefaultInitIsPyTorchKaimingUniform() {
        var rng = RandomGenerator(seed: 11)
        let layer = Linear(inFeatures: 64, outFeatures: 256, rng: &rng)
        let bound: Float = 1 / 8
        let w = layer.weight.value.array, b = layer.bias!.value.array
        XCTAssertTrue(w.allSatisfy { abs($0) <= bound })
        XCTAssertTrue(b.allSatisfy { abs($0) <= bound })
        // U(−a, a) has variance a²/3; with 16384 draws the sample variance is within a few percent.
        let variance = w.reduce(0) { $0 + $1 * $1 } / Float(w.count)
        XCTAssertEqual(variance, bound * bound / 3, accuracy: 0.05 * bound * bound / 3)
        XCTAssertGreaterThan(w.max()!, 0.95 * bound)
        var again = RandomGenerator(seed: 11)
        XCTAssertEqual(Linear(inFeatures: 64, outFeatures: 256, rng: &again).weight.value, layer.weight.value)
        XCTAssertEqual(layer.namedParameters().map(\.0), ["weight", "bias"])
    }

    func testLinearFromTensorsForwardAndValidation() throws {
        let layer = try Linear(weight: Tensor([1, 2, 3, 4], shape: [2, 2]), bias: Tensor([1, -1], shape: [2]), trainable: false)
        XCTAssertTrue(layer.isFrozen)
        let y = layer(Variable(Tensor([1, 1], shape: [1, 2])))
        XCTAssertEqual(y.value.array, [4, 6])
        XCTAssertFalse(y.requiresGrad)
        XCTAssertThrowsError(try Linear(weight: Tensor(zeros: [2, 2]), bias: Tensor(zeros: [3]))) {
            XCTAssertEqual($0 as? NNError, .shapeMismatch(name: "Linear.bias", expected: [2], got: [3]))
        }
        XCTAssertThrowsError(try Linear(weight: Tensor(zeros: [4])))
    }

    func testEmbeddingAndDropoutLayers() throws {
        let embed = try Embedding(weight: Tensor([0, 0, 1, 1, 2, 2], shape: [3, 2]))
        XCTAssertEqual(try embed([2, 1]).value.array, [2, 2, 1, 1])
        XCTAssertThrowsError(try embed([3]))
        XCTAssertThrowsError(try Dropout(probability: 1.5)) {
            XCTAssertEqual($0 as? NNError, .invalidArgument(name: "dropout probability", reason: "1.5 is outside [0, 1]"))
        }
        let drop = try Dropout(probability: 0.5)
        var rng = RandomGenerator(seed: 1)
        let x = Variable(Tensor(repeating: 1, shape: [64]))
        XCTAssertNotEqual(drop(x, rng: &rng).value, x.value)
        drop.eval()
        XCTAssertEqual(drop(x, rng: &rng).value, x.value)
    }
}
