import ArgumentParser
import Collectives
import Foundation
import Models
import TensorCore
import Tokenizers
import Training

/// `lorakit train`: LoRA or AdaLoRA fine-tuning on JSONL data, writing a PEFT-format adapter.
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a model with LoRA or AdaLoRA on JSONL data; writes a PEFT-format adapter, checkpoints, metrics.jsonl and loss.svg.",
        discussion: """
            Data: a directory with train.jsonl and valid.jsonl (test.jsonl optional), one example per line as \
            {"text"}, {"prompt", "completion"} or {"messages": [{"role", "content"}, ...]}. Loss is on completions and \
            assistant turns unless --train-on-prompt.
            Every option can also be given in a JSON or YAML file (--config run.yaml) with the same names \
            (learning-rate or learning_rate); flags on the command line override the file.
            AdaLoRA (--method adalora) starts every module at --init-rank and moves the rank budget to the modules that \
            need it, ending at --target-rank × modules triplets: warm-up for --tinit steps (default 10% of --iters), \
            then the budget shrinks on a cubic schedule, re-allocated every --delta-t steps (default: about 15 times), \
            and the final pattern trains for the last --tfinal steps (default 25%). It prints the final ranks per layer \
            and module and writes ranks.svg and rank_history.svg.
            """)

    @Option(help: "Model: a .gguf file or a Hugging Face directory (config.json, *.safetensors, tokenizer.json).") var model: String?
    @Option(help: "Data directory (train.jsonl, valid.jsonl) or a single .jsonl file.") var data: String?
    @Option(help: "Output directory for the adapter, checkpoints, metrics.jsonl and loss.svg (default: adapters).") var out: String?
    @Option(help: "Continue from a checkpoint directory, or a run's output directory (its newest checkpoint).") var resume: String?
    @Option(help: "A JSON or YAML file with any of these options.") var config: String?
    @Option(help: "BERT models: classification ({\"text\", \"label\"}) or retrieval ({\"anchor\", \"positive\"}) (default: from the data).") var task: String?

    @Option(help: "LoRA rank r (default 8).") var rank: Int?
    @Option(help: "LoRA alpha; the update is scaled by alpha / r (default 16).") var alpha: Double?
    @Option(help: "Dropout on the adapter input (default 0.05).") var dropout: Double?
    @Option(help: "Modules to adapt: names (q_proj,v_proj), all-linear, or re:<regex> (default q_proj,v_proj).") var targets: String?
    @Option(help: "Adapter method: lora or adalora (default lora).") var method: String?
    @Flag(inversion: .prefixedNo, help: "DoRA: a trainable magnitude per output row times the row-normalised W + s·B·A (PEFT use_dora).") var dora: Bool?
    @Flag(inversion: .prefixedNo, help: "rsLoRA: scale the update by alpha / sqrt(r) instead of alpha / r (PEFT use_rslora).") var rslora: Bool?
    @Option(name: .customLong("init"), help: "LoRA initialisation (PEFT init_lora_weights): default (A kaiming-uniform, B = 0), gaussian, pissa, pissa_niter_<K>, olora, random.") var initMethod: String?
    @Option(help: "LoRA+: lora_B (and DoRA's magnitude) learn at this multiple of --learning-rate (paper: 16).") var loraplusLrRatio: Double?
    @Option(help: "AdaLoRA: rank every module starts with (init_r, default 12).") var initRank: Int?
    @Option(help: "AdaLoRA: target average rank; the final budget is target_r × modules (default 8).") var targetRank: Int?
    @Option(help: "AdaLoRA: warm-up steps at the full budget (default 10% of --iters).") var tinit: Int?
    @Option(help: "AdaLoRA: final steps with the rank pattern fixed (default 25% of --iters).") var tfinal: Int?
    @Option(help: "AdaLoRA: steps between budget re-allocations (default: about 15 allocations).") var deltaT: Int?
    @Option(help: "AdaLoRA: EMA coefficient of the importance (PEFT's beta1, default 0.85; not AdamW's).") var importanceBeta1: Double?
    @Option(help: "AdaLoRA: EMA coefficient of its uncertainty (PEFT's beta2, default 0.85).") var importanceBeta2: Double?
    @Option(help: "AdaLoRA: weight of the orthogonal regulariser (default 0.5; 0 turns it off).") var orthRegWeight: Double?
    @Option(help: "AdaLoRA: regulariser form, peft (mean of Frobenius norms) or squared (the paper's) (default peft).") var orthRegForm: String?

    @Option(help: "Optimizer steps (default 1000).") var iters: Int?
    @Option(help: "Examples per micro-batch (default 4).") var batchSize: Int?
    @Option(help: "Micro-batches per optimizer step (default 1).") var gradAccum: Int?
    @Option(help: "Longest sequence in tokens; longer examples are cut (default 2048).") var maxLength: Int?
    @Option(help: "Peak learning rate (default 2e-4).") var learningRate: Double?
    @Option(help: "Learning rate at the end of the decay (default 0).") var minLearningRate: Double?
    @Option(help: "Linear warmup steps (default 0).") var warmup: Int?
    @Option(help: "Decay after warmup: cosine, linear or constant (default cosine).") var schedule: String?
    @Option(help: "AdamW decoupled weight decay (default 0).") var weightDecay: Double?
    @Option(help: "Global gradient-norm clipping; 0 turns it off (default 1.0).") var clip: Double?
    @Option(help: "Evaluate on valid.jsonl every N steps (default 100; 0: only at the start and the end).") var evalEvery: Int?
    @Option(help: "Batches per evaluation (default: the whole valid split).") var evalBatches: Int?
    @Option(help: "Write a checkpoint every N steps (default 100; 0: only at the end).") var saveEvery: Int?
    @Option(help: "Keep only the newest N checkpoints (default 0: all).") var keepCheckpoints: Int?
    @Option(help: "Seed for adapter initialisation, data order and dropout (default 0).") var seed: Int?
    @Flag(inversion: .prefixedNo, help: "Also learn prompts and user turns.") var trainOnPrompt: Bool?
    @Flag(inversion: .prefixedNo, help: "Pack several examples into each --max-length row instead of padding.") var packing: Bool?
    @Option(help: "Chat layout for {\"messages\"} data when the model's template is missing or unusual: chatml or llama3.") var chatFormat: String?
    @Flag(inversion: .prefixedNo, help: "Let a fresh run replace an earlier run's checkpoints in --out.") var overwrite: Bool?
    @Flag(inversion: .prefixedNo, help: "Load a GGUF base as float32 instead of keeping its quantized blocks (faster, more memory).") var dequantize: Bool?
    @Flag(inversion: .prefixedNo, help: "Recompute each layer's activations during backward instead of keeping them: a fraction of the activation memory for about one more forward pass (gradient checkpointing).") var recomputeActivations: Bool?
    @Option(help: "Data parallelism: mpi to train as one rank of `mpirun -np N lorakit train …` (Open MPI; --batch-size is the global micro-batch, split across the ranks), none for one process (default).") var distributed: String?

    /// The flags given on the command line (nil where absent, so a config file can fill them).
    var commandLineOptions: TrainingRunOptions {
        var o = TrainingRunOptions()
        o.model = model; o.data = data; o.out = out; o.resume = resume
        o.rank = rank; o.alpha = alpha; o.dropout = dropout; o.targets = targets
        o.iters = iters; o.batchSize = batchSize; o.gradAccum = gradAccum; o.maxLength = maxLength
        o.learningRate = learningRate; o.minLearningRate = minLearningRate; o.warmup = warmup; o.schedule = schedule
        o.weightDecay = weightDecay; o.clip = clip; o.evalEvery = evalEvery; o.evalBatches = evalBatches
        o.saveEvery = saveEvery; o.keepCheckpoints = keepCheckpoints; o.seed = seed
        o.trainOnPrompt = trainOnPrompt; o.packing = packing; o.chatFormat = chatFormat; o.overwrite = overwrite
        o.dequantize = dequantize; o.recomputeActivations = recomputeActivations
        o.method = method; o.initRank = initRank; o.targetRank = targetRank; o.tinit = tinit; o.tfinal = tfinal; o.deltaT = deltaT
        o.importanceBeta1 = importanceBeta1; o.importanceBeta2 = importanceBeta2; o.orthRegWeight = orthRegWeight; o.orthRegForm = orthRegForm
        o.distributed = distributed
        o.dora = dora; o.rslora = rslora; o.initLoraWeights = initMethod; o.loraplusLrRatio = loraplusLrRatio
        return o
    }

    @OptionGroup var deviceOption: DeviceOption

    func run() throws {
        try deviceOption.requireCPUPath(command: "train")
        var options = commandLineOptions
        if let config { options = options.overriding(try TrainingRunOptions.load(configFile: URL(fileURLWithPath: config))) }
        if let path = options.model, EncoderTrainingRun.isEncoderModel(path) {  // BERT: classification or retrieval
            try BLAS.ensureAvailable()
            try EncoderTrainingRun.execute(options: options, task: task, progress: ProgressLine())
            return
        }
        if task != nil { throw ValidationError("--task applies to BERT encoder models only") }
        let plan = try options.resolved()
        let collective = try DistributedLaunch.open(plan.distributed)  // before BLAS: sets the threads per rank
        try DataParallelRun.run(collective) {
            try BLAS.ensureAvailable()
            let loaded = try loadTrainableModel(path: plan.modelPath, dequantize: plan.dequantize)
            try TrainingRun.execute(plan, model: loaded.model, tokenizer: loaded.tokenizer, chatTemplate: loaded.chatTemplate,
                                    progress: ProgressLine(), collective: collective)
        }
    }
}

/// The one place `lorakit train` meets a model family: opens the model, its tokenizer and chat template.
func loadTrainableModel(path: String, dequantize: Bool) throws
    -> (model: any TrainableLanguageModel, tokenizer: any Tokenizer, chatTemplate: String?) {
    let loaded = try ModelLoader.load(URL(fileURLWithPath: path), options: ModelLoadOptions(keepQuantized: !dequantize))
    guard let tokenizer = loaded.tokenizer else {
        throw ValidationError("\(path): the model has no tokenizer (tokenizer.json), which training needs to read the data")
    }
    return (loaded.model, tokenizer, loaded.chatTemplate)
}
