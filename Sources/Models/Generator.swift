// Text generation: prefill the prompt into a KV cache, then one decode step per new token, streaming text as
// it becomes whole UTF-8. Stops on a stop token (EOS / end of turn), on a stop string (never printed, not even
// in part: text that could still turn into a stop string is held back), at the token limit, or when the context
// is full. The cache is kept between calls, so a chat re-feeds only what follows the shared prefix.
import Foundation
import TensorCore
import Tokenizers

/// What to generate and when to stop.
public struct GenerationOptions: Sendable {
    public var maxNewTokens: Int
    public var sampling: SamplingParameters
    /// Generation ends before any of these strings would be emitted.
    public var stopStrings: [String]
    /// Ids that end generation in addition to the generator's own (the model's EOS ids).
    public var stopTokenIDs: Set<Int32>
    /// Leave control tokens out of the text.
    public var skipSpecialTokens: Bool

    public init(maxNewTokens: Int = 256, sampling: SamplingParameters = SamplingParameters(), stopStrings: [String] = [],
                stopTokenIDs: Set<Int32> = [], skipSpecialTokens: Bool = true) {
        self.maxNewTokens = maxNewTokens; self.sampling = sampling; self.stopStrings = stopStrings
        self.stopTokenIDs = stopTokenIDs; self.skipSpecialTokens = skipSpecialTokens
    }
}

/// Why generation ended.
public enum StopReason: Equatable, Sendable {
    case stopToken(Int32)
    case stopString(String)
    case maxTokens
    /// The KV cache reached the model's context length.
    case contextFull
}

/// The outcome of one `generate` call.
public struct GenerationResult: Sendable {
    /// Every token chosen, the stop token included.
    public let tokens: [Int32]
    /// The text streamed (stop token and stop string excluded).
    public let text: String
    public let stopReason: StopReason
    public let promptTokenCount: Int
    /// Prompt tokens whose keys were already cached from an earlier call.
    public let reusedPromptTokens: Int
    public let prefillSeconds: Double
    public let decodeSeconds: Double
}

/// Generates text from a model and its tokenizer, keeping the KV cache between calls.
public final class Generator {
    public let model: LlamaModel
    public let tokenizer: BPETokenizer
    /// Ids that always end generation (EOS, end of turn).
    public let stopTokenIDs: Set<Int32>
    public let cache: KVCache

    public init(model: LlamaModel, tokenizer: BPETokenizer, stopTokenIDs: Set<Int32>) {
        self.model = model; self.tokenizer = tokenizer; self.stopTokenIDs = stopTokenIDs
        cache = KVCache(config: model.config)
    }

    /// A generator for a loaded model; throws if the checkpoint has no tokenizer.
    public convenience init(_ loaded: LoadedModel) throws {
        guard let tokenizer = loaded.tokenizer else {
            throw ModelError.unreadable(path: loaded.source, reason: "no tokenizer (tokenizer.json or GGUF tokenizer.ggml.*) to generate text with")
        }
        self.init(model: loaded.model, tokenizer: tokenizer, stopTokenIDs: loaded.stopTokenIDs)
    }

    /// Encodes `text` (special tokens such as <|im_start|> parsed; BOS added if the tokenizer asks) and generates.
    public func generate(text: String, options: GenerationOptions = GenerationOptions(),
                         onText: (String) throws -> Void = { _ in }) throws -> GenerationResult {
        try generate(prompt: tokenizer.encode(text).map { Int32($0) }, options: options, onText: onText)
    }

    /// Generates after `prompt`, calling `onText` with each piece of text as soon as it is final.
    public func generate(prompt: [Int32], options: GenerationOptions = GenerationOptions(),
                         onText: (String) throws -> Void = { _ in }) throws -> GenerationResult {
        try SequenceDecoding.validate(prompt: prompt, options: options, model: model, maxLength: cache.maxLength)
        var sequence = try SequenceDecoding(prompt: prompt, options: options, stopTokenIDs: stopTokenIDs, tokenizer: tokenizer)

        // Reuse the cached prefix; at least the last prompt token is run again to get its logits.
        var shared = 0
        while shared < min(cache.tokens.count, prompt.count - 1), cache.tokens[shared] == prompt[shared] { shared += 1 }
        cache.truncate(to: shared)
        let prefillStart = DispatchTime.now().uptimeNanoseconds
        var logits = try model.forward(tokens: Array(prompt[shared...]), cache: cache)
        let decodeStart = DispatchTime.now().uptimeNanoseconds
        if !sequence.finished {
            while let next = try sequence.step(logits: logits, contextFull: cache.length >= cache.maxLength, emit: onText) {
                logits = try model.forward(tokens: [next], cache: cache)
            }
        }
        let end = DispatchTime.now().uptimeNanoseconds
        return sequence.result(promptTokenCount: prompt.count, reusedPromptTokens: shared,
                               prefillSeconds: Double(decodeStart - prefillStart) / 1e9, decodeSeconds: Double(end - decodeStart) / 1e9)
    }
}

/// One sequence's token choice and stop rules, shared by `Generator` and `BatchGenerator` so that a row of a batch
/// follows exactly the rules (and draws exactly the random numbers) of the same sequence generated alone.
struct SequenceDecoding {
    private var sampler: Sampler
    private let stops: Set<Int32>
    private let maxNewTokens: Int
    private var history: [Int32]
    private(set) var generated: [Int32] = []
    private var decoder: StreamingDecoder
    private var text: StopStringFilter
    private(set) var reason = StopReason.maxTokens
    /// No more tokens will be chosen (also true from the start for maxNewTokens = 0).
    private(set) var finished = false

    /// Throws for an unusable prompt or options, naming what is wrong.
    static func validate(prompt: [Int32], options: GenerationOptions, model: LlamaModel, maxLength: Int) throws {
        guard !prompt.isEmpty else { throw ModelError.invalidArgument(name: "prompt", reason: "empty prompt") }
        guard options.maxNewTokens >= 0 else { throw ModelError.invalidArgument(name: "max-tokens", reason: "\(options.maxNewTokens) must be ≥ 0") }
        guard prompt.count <= maxLength else { throw ModelError.contextOverflow(tokens: prompt.count, contextLength: maxLength) }
        try model.validateTokens(prompt)
        if let empty = options.stopStrings.first(where: \.isEmpty) {
            throw ModelError.invalidArgument(name: "stop", reason: "stop string \(empty.debugDescription) is empty")
        }
    }

    init(prompt: [Int32], options: GenerationOptions, stopTokenIDs: Set<Int32>, tokenizer: BPETokenizer) throws {
        sampler = try Sampler(options.sampling)
        stops = stopTokenIDs.union(options.stopTokenIDs)
        maxNewTokens = options.maxNewTokens
        history = prompt
        decoder = StreamingDecoder(tokenizer: tokenizer, skipSpecialTokens: options.skipSpecialTokens)
        text = StopStringFilter(stopStrings: options.stopStrings)
        if maxNewTokens == 0 { try end { _ in } }  // nothing is chosen; there is no text to emit
    }

    /// Chooses the next token from `logits` (of the last token run) and applies the stop rules, emitting text that is
    /// final. Returns the token to run next, or nil when the sequence has ended. `contextFull`: the cache cannot take
    /// another token.
    mutating func step(logits: Tensor, contextFull: Bool, emit: (String) throws -> Void) throws -> Int32? {
        precondition(!finished, "step after the sequence ended")
        let next = sampler.sample(logits: logits, history: history)
        generated.append(next); history.append(next)
        if stops.contains(next) { reason = .stopToken(next); try end(emit); return nil }
        if let found = try text.append(decoder.append(Int(next)), emit: emit) {
            reason = .stopString(found); finished = true  // the stop string and anything held back are dropped
            return nil
        }
        if generated.count == maxNewTokens { try end(emit); return nil }
        if contextFull { reason = .contextFull; try end(emit); return nil }
        return next
    }

    /// Ends without a stop string: flushes the decoder's incomplete bytes and the text held back.
    private mutating func end(_ emit: (String) throws -> Void) throws {
        _ = try text.append(decoder.finish(), emit: emit)
        try text.flush(emit: emit)
        finished = true
    }

    func result(promptTokenCount: Int, reusedPromptTokens: Int, prefillSeconds: Double, decodeSeconds: Double) -> GenerationResult {
        GenerationResult(tokens: generated, text: text.emitted, stopReason: reason, promptTokenCount: promptTokenCount,
                         reusedPromptTokens: reusedPromptTokens, prefillSeconds: prefillSeconds, decodeSeconds: decodeSeconds)
    }
}

/// Streams text while holding back any tail that could still become a stop string.
struct StopStringFilter {
    let stops: [[Unicode.Scalar]]
    /// Text received but not yet emitted.
    private var pending: [Unicode.Scalar] = []
    private(set) var emitted = ""

    init(stopStrings: [String]) { stops = stopStrings.map { Array($0.unicodeScalars) } }

    /// Adds text; emits what is safe. Returns the stop string if one is now complete (its text and anything
    /// after it are dropped).
    mutating func append(_ piece: String, emit: (String) throws -> Void) throws -> String? {
        pending += piece.unicodeScalars
        var earliest: (Int, Int)?   // (position, stop index)
        for (index, stop) in stops.enumerated() where stop.count <= pending.count {
            for start in 0...(pending.count - stop.count) where pending[start..<(start + stop.count)].elementsEqual(stop) {
                if earliest == nil || start < earliest!.0 { earliest = (start, index) }
                break
            }
        }
        if let (position, index) = earliest {
            try send(position, emit)
            pending.removeAll()
            return String(String.UnicodeScalarView(stops[index]))
        }
        // Hold back the longest tail that is a proper prefix of some stop string.
        var hold = 0
        for stop in stops {
            for length in stride(from: min(stop.count - 1, pending.count), to: hold, by: -1)
            where pending[(pending.count - length)...].elementsEqual(stop[..<length]) {
                hold = length; break
            }
        }
        try send(pending.count - hold, emit)
        return nil
    }

    /// Emits everything held back (generation ended without a stop string).
    mutating func flush(emit: (String) throws -> Void) throws { try send(pending.count, emit) }

    private mutating func send(_ count: Int, _ emit: (String) throws -> Void) throws {
        guard count > 0 else { return }
        let out = String(String.UnicodeScalarView(pending[..<count]))
        pending.removeFirst(count)
        emitted += out
        try emit(out)
    }
}
