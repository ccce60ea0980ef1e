// The demo task: rewrite a date written in one of many everyday forms as ISO 8601 ("2021-03-05"). A small base
// model gets it mostly wrong out of the box and a LoRA adapter learns it in minutes, which makes it a fair,
// checkable showcase. Every form is unambiguous: numeric forms whose order varies say so ("(US)", "(day first)"),
// dotted dates are day-first as everywhere they are used, and two-digit years ('21) only stand for 2000–2099.
// Splits hold disjoint dates, so test accuracy measures the rule, not memorised dates.
import Foundation
import TensorCore
import Tokenizers

/// A way of writing a date.
public enum DateForm: String, CaseIterable, Sendable {
    case ordinalOfMonth        // the 5th of March, 2021
    case monthAbbrevTwoDigitYear  // Mar 5 '21
    case slashYearFirst        // 2021/3/5
    case dottedDayFirst        // 5.3.2021
    case monthOrdinalYear      // March 5th 2021
    case dashedAbbrev          // 05-Mar-2021
    case weekdayMonthDayYear   // Friday, March 5, 2021
    case slashUS               // 3/5/2021 (US)
    case slashDayFirst         // 05/03/2021 (day first)
    case dayMonthYear          // 5 March 2021
    case compact               // 20210305
    case monthAbbrevDotComma   // Mar. 5, 2021
    case shortWeekdayDayMonth  // Fri 5 Mar 2021
    case ordinalWords          // the fifth of March 2021

    public static let monthNames = ["January", "February", "March", "April", "May", "June", "July", "August",
                                    "September", "October", "November", "December"]
    public static let weekdayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    static let ordinalWordList = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
        "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth",
        "twentieth", "twenty-first", "twenty-second", "twenty-third", "twenty-fourth", "twenty-fifth", "twenty-sixth",
        "twenty-seventh", "twenty-eighth", "twenty-ninth", "thirtieth", "thirty-first"]

    /// Whether the form can write `date` without ambiguity (two-digit years only for 2000–2099).
    public func canWrite(_ date: CalendarDate) -> Bool {
        self == .monthAbbrevTwoDigitYear ? (2000...2099).contains(date.year) : true
    }

    /// The date written in this form.
    public func write(_ date: CalendarDate) -> String {
        let month = Self.monthNames[date.month - 1], abbrev = String(month.prefix(3))
        let weekday = Self.weekdayNames[date.weekdayIndex]
        let y = String(date.year), m = String(date.month), d = String(date.day)
        let mm = date.month < 10 ? "0" + m : m, dd = date.day < 10 ? "0" + d : d
        switch self {
        case .ordinalOfMonth: return "the \(Self.ordinal(date.day)) of \(month), \(y)"
        case .monthAbbrevTwoDigitYear: return "\(abbrev) \(d) '\(String(format: "%02d", date.year % 100))"
        case .slashYearFirst: return "\(y)/\(m)/\(d)"
        case .dottedDayFirst: return "\(d).\(m).\(y)"
        case .monthOrdinalYear: return "\(month) \(Self.ordinal(date.day)) \(y)"
        case .dashedAbbrev: return "\(dd)-\(abbrev)-\(y)"
        case .weekdayMonthDayYear: return "\(weekday), \(month) \(d), \(y)"
        case .slashUS: return "\(m)/\(d)/\(y) (US)"
        case .slashDayFirst: return "\(dd)/\(mm)/\(y) (day first)"
        case .dayMonthYear: return "\(d) \(month) \(y)"
        case .compact: return y + mm + dd
        case .monthAbbrevDotComma: return "\(abbrev). \(d), \(y)"
        case .shortWeekdayDayMonth: return "\(weekday.prefix(3)) \(d) \(abbrev) \(y)"
        case .ordinalWords: return "the \(Self.ordinalWordList[date.day - 1]) of \(month) \(y)"
        }
    }

    /// 1st, 2nd, 3rd, 4th, …, 11th, 12th, 13th, …, 21st, 22nd, 23rd, …
    public static func ordinal(_ n: Int) -> String {
        let suffix: String
        switch (n % 10, n % 100) {
        case (_, 11...13): suffix = "th"
        case (1, _): suffix = "st"
        case (2, _): suffix = "nd"
        case (3, _): suffix = "rd"
        default: suffix = "th"
        }
        return "\(n)\(suffix)"
    }
}

/// One example of the task.
public struct DateNormalizationExample: Equatable, Sendable {
    public let date: CalendarDate
    public let form: DateForm
    /// The date as written in `form`.
    public let text: String
    public let prompt: String
    /// The ISO date, the exact expected answer.
    public var answer: String { date.iso }
}

/// How the splits are written: as chat turns (for chat models) or prompt/completion pairs.
public enum DemoDataFormat: String, CaseIterable, Sendable {
    case messages
    case completion
}

/// Deterministic generator of the date-normalisation task.
public struct DateNormalizationTask: Sendable {
    public var seed: UInt64
    /// Dates are drawn uniformly from firstYear-01-01 through lastYear-12-31.
    public var firstYear = 1950
    public var lastYear = 2049
    public var instruction = "Normalize this date to ISO format:"

    /// A task with the given seed and the default year range.
    public init(seed: UInt64 = 0) { self.seed = seed }

    public func prompt(for text: String) -> String { "\(instruction) \(text)" }

    /// Train, valid and test examples with pairwise disjoint dates; the same for the same seed and counts.
    public func splits(train: Int, valid: Int, test: Int) throws -> (train: [DateNormalizationExample], valid: [DateNormalizationExample], test: [DateNormalizationExample]) {
        guard let first = CalendarDate(year: firstYear, month: 1, day: 1), let last = CalendarDate(year: lastYear, month: 12, day: 31),
              first <= last else {
            throw TrainingError.invalidOption(name: "year range", reason: "\(firstYear)…\(lastYear) is empty")
        }
        for (name, n) in [("train", train), ("valid", valid), ("test", test)] where n < 0 {
            throw TrainingError.invalidOption(name: name, reason: "\(n) examples: must be ≥ 0")
        }
        let available = last.dayNumber - first.dayNumber + 1
        guard train + valid + test <= available else {
            throw TrainingError.invalidOption(name: "train + valid + test",
                                              reason: "\(train + valid + test) distinct dates asked, the years \(firstYear)…\(lastYear) have \(available)")
        }
        var rng = RandomGenerator(seed: seed)
        let days = rng.permutation(available).prefix(train + valid + test).map { first.dayNumber + $0 }
        let forms = DateForm.allCases
        let examples = days.map { dayNumber -> DateNormalizationExample in
            let date = CalendarDate(dayNumber: dayNumber)
            var index = Int(rng.nextUInt64() % UInt64(forms.count))
            while !forms[index].canWrite(date) { index = (index + 1) % forms.count }  // some form always can
            let text = forms[index].write(date)
            return DateNormalizationExample(date: date, form: forms[index], text: text, prompt: prompt(for: text))
        }
        return (Array(examples[..<train]), Array(examples[train..<(train + valid)]), Array(examples[(train + valid)...]))
    }

    /// One JSONL line for an example.
    public static func jsonLine(_ example: DateNormalizationExample, format: DemoDataFormat) -> String {
        let object: [String: Any]
        switch format {
        case .messages:
            object = ["messages": [["role": "user", "content": example.prompt], ["role": "assistant", "content": example.answer]]]
        case .completion:
            object = ["prompt": example.prompt, "completion": example.answer]
        }
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])  // strings only: cannot fail
        return String(decoding: data, as: UTF8.self)
    }

    /// Writes train.jsonl, valid.jsonl and test.jsonl into `directory` (created if needed); returns their URLs.
    @discardableResult
    public func write(to directory: URL, train: Int, valid: Int, test: Int, format: DemoDataFormat = .messages) throws -> [URL] {
        let splits = try splits(train: train, valid: valid, test: test)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw TrainingError.file(path: directory.path, reason: "cannot create directory: \(error.localizedDescription)")
        }
        return try [("train", splits.train), ("valid", splits.valid), ("test", splits.test)].map { name, examples in
            let url = directory.appendingPathComponent("\(name).jsonl")
            let text = examples.map { Self.jsonLine($0, format: format) + "\n" }.joined()
            do { try Data(text.utf8).write(to: url, options: .atomic) } catch {
                throw TrainingError.file(path: url.path, reason: "cannot write: \(error.localizedDescription)")
            }
            return url
        }
    }
}
