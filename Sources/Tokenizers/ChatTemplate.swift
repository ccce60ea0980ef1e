// Chat formatting without a Jinja engine: the template string a model ships (GGUF tokenizer.chat_template or
// tokenizer_config.json) is recognised by its markers as one of the formats below, and the parts that vary
// between models of one format (SmolLM2's and Qwen's default system prompts) are read out of the template.
import Foundation

/// One turn of a conversation.
public struct ChatMessage: Equatable, Sendable {
    /// "system", "user" or "assistant" (any role text is passed through).
    public var role: String
    /// The turn's text.
    public var content: String

    /// A message with the given role and content.
    public init(role: String, content: String) { self.role = role; self.content = content }
    /// A system message.
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    /// A user message.
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    /// An assistant message.
    public static func assistant(_ content: String) -> ChatMessage { ChatMessage(role: "assistant", content: content) }
}

/// The chat layouts this package renders; raw values are the `--chat-format` names.
public enum ChatFormat: String, CaseIterable, Sendable {
    /// `<|im_start|>role\ncontent<|im_end|>\n` (SmolLM2, Qwen); generation prompt `<|im_start|>assistant\n`.
    case chatML = "chatml"
    /// `<|begin_of_text|>` then `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` per turn.
    case llama3
}

/// Why a chat template could not be used.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// The template has neither ChatML nor Llama 3 markers.
    case unrecognizedTemplate(excerpt: String)
    /// The model has no chat template and no format was given.
    case missingTemplate
    /// A `--chat-format` value that is not a known format.
    case unknownFormatName(String)

    private static var choices: String { ChatFormat.allCases.map(\.rawValue).joined(separator: "|") }

    public var description: String {
        switch self {
        case let .unrecognizedTemplate(excerpt):
            return "unrecognised chat template (\"\(excerpt)…\"); choose the layout with --chat-format \(Self.choices)"
        case .missingTemplate:
            return "the model has no chat template; choose the layout with --chat-format \(Self.choices)"
        case let .unknownFormatName(name):
            return "unknown chat format \"\(name)\"; --chat-format takes \(Self.choices)"
        }
    }
}

/// Renders conversations in a model's chat format.
public struct ChatTemplate: Equatable, Sendable {
    /// The layout.
    public let format: ChatFormat
    /// System prompt inserted when a conversation does not start with a system message (ChatML only).
    public let defaultSystemPrompt: String?
    /// Whether message content is stripped of surrounding whitespace (Llama 3's `| trim`).
    public let trimsContent: Bool

    /// A template with explicit settings.
    public init(format: ChatFormat, defaultSystemPrompt: String? = nil, trimsContent: Bool = false) {
        self.format = format
        self.defaultSystemPrompt = defaultSystemPrompt
        self.trimsContent = trimsContent
    }

    /// Recognises a Jinja chat template by its markers and reads its default system prompt.
    public init(template: String) throws {
        guard let format = Self.detectFormat(template) else {
            let excerpt = String(template.prefix(60)).replacingOccurrences(of: "\n", with: "\\n")
            throw ChatTemplateError.unrecognizedTemplate(excerpt: excerpt)
        }
        self.init(format: format, template: template)
    }

    /// The template to use given the model's template string (if any) and a user override (a `--chat-format`
    /// value, which wins). The default system prompt is still read from the model's template when it has the
    /// same layout.
    public init(template: String?, formatOverride: String?) throws {
        if let name = formatOverride {
            guard let format = ChatFormat(rawValue: name.lowercased()) else { throw ChatTemplateError.unknownFormatName(name) }
            if let template = template, Self.detectFormat(template) == format {
                self.init(format: format, template: template)
            } else {
                self.init(format: format, trimsContent: format == .llama3)
            }
        } else if let template = template {
            try self.init(template: template)
        } else {
            throw ChatTemplateError.missingTemplate
        }
    }

    private init(format: ChatFormat, template: String) {
        switch format {
        case .chatML:
            self.init(format: .chatML, defaultSystemPrompt: Self.chatMLDefaultSystemPrompt(in: template))
        case .llama3:
            let trims = template.contains("| trim") || template.contains("|trim")
            self.init(format: .llama3, trimsContent: trims)
        }
    }

    /// The layout a template string uses, by its marker tokens; nil if neither is present.
    public static func detectFormat(_ template: String) -> ChatFormat? {
        if template.contains("<|start_header_id|>") && template.contains("<|end_header_id|>") { return .llama3 }
        if template.contains("<|im_start|>") { return .chatML }
        return nil
    }

    /// The conversation as the model expects it; `addGenerationPrompt` ends with the assistant header.
    /// Encode the result with `addSpecialTokens: false` (the text carries its own special tokens).
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool = true) -> String {
        var out = ""
        switch format {
        case .chatML:
            if let system = defaultSystemPrompt, let first = messages.first, first.role != "system" {
                out += "<|im_start|>system\n\(system)<|im_end|>\n"
            }
            for message in messages {
                out += "<|im_start|>\(message.role)\n\(content(message))<|im_end|>\n"
            }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        case .llama3:
            out += "<|begin_of_text|>"
            for message in messages {
                out += "<|start_header_id|>\(message.role)<|end_header_id|>\n\n\(content(message))<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        }
        return out
    }

    private func content(_ message: ChatMessage) -> String {
        trimsContent ? message.content.trimmingCharacters(in: .whitespacesAndNewlines) : message.content
    }

    /// The system prompt a ChatML template writes out whole: the first string literal inside a Jinja tag that
    /// reads `<|im_start|>system\n…<|im_end|>`. nil when the template has none.
    static func chatMLDefaultSystemPrompt(in template: String) -> String? {
        let header = "<|im_start|>system\n", footer = "<|im_end|>"
        for literal in jinjaStringLiterals(template) where literal.hasPrefix(header) {
            let body = literal.dropFirst(header.count)
            guard let end = body.range(of: footer) else { continue }
            let prompt = String(body[..<end.lowerBound])
            if !prompt.isEmpty { return prompt }
        }
        return nil
    }

    /// String literals ('…' or "…", with \n \t \' \" \\ escapes resolved) inside `{{ }}` and `{% %}` tags.
    static func jinjaStringLiterals(_ template: String) -> [String] {
        let s = Array(template.unicodeScalars)
        var literals: [String] = []
        var i = 0
        var inTag = false
        while i < s.count {
            if !inTag {
                if s[i] == "{", i + 1 < s.count, s[i + 1] == "{" || s[i + 1] == "%" { inTag = true; i += 2 } else { i += 1 }
                continue
            }
            let c = s[i]
            if (c == "}" || c == "%"), i + 1 < s.count, s[i + 1] == "}" { inTag = false; i += 2; continue }
            guard c == "'" || c == "\"" else { i += 1; continue }
            var literal = String.UnicodeScalarView()
            i += 1
            while i < s.count, s[i] != c {
                if s[i] == "\\", i + 1 < s.count {
                    switch s[i + 1] {
                    case "n": literal.append("\n")
                    case "t": literal.append("\t")
                    case "r": literal.append("\r")
                    default: literal.append(s[i + 1])
                    }
                    i += 2
                } else {
                    literal.append(s[i]); i += 1
                }
            }
            i += 1   // closing quote
            literals.append(String(literal))
        }
        return literals
    }
}
