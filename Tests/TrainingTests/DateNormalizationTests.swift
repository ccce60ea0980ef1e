import Foundation
import Tokenizers
import TensorCore
import Training
import XCTest

final class DateNormalizationTests: XCTestCase {
    /// Independent reading of each form with Foundation's (ICU's) date parser, after undoing the decorations
    /// ICU has no pattern for (ordinal suffixes and words, "(US)" markers).
    static let formatter: DateFormatter = {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.isLenient = false
        formatter.twoDigitStartDate = ISO8601DateFormatter().date(from: "2000-01-01T00:00:00Z")
        return formatter
    }()

    static func parse(_ text: String, form: DateForm) -> String? {
        let formatter = Self.formatter
        var s = text, pattern: String
        func stripOrdinal(_ s: String) -> String { s.replacingOccurrences(of: #"(\d+)(st|nd|rd|th)"#, with: "$1", options: .regularExpression) }
        switch form {
        case .ordinalOfMonth: s = stripOrdinal(String(s.dropFirst(4))); pattern = "d 'of' MMMM, yyyy"
        case .monthAbbrevTwoDigitYear: pattern = "MMM d ''yy"
        case .slashYearFirst: pattern = "yyyy/M/d"
        case .dottedDayFirst: pattern = "d.M.yyyy"
        case .monthOrdinalYear: s = stripOrdinal(s); pattern = "MMMM d yyyy"
        case .dashedAbbrev: pattern = "dd-MMM-yyyy"
        case .weekdayMonthDayYear: pattern = "EEEE, MMMM d, yyyy"
        case .slashUS:
            guard s.hasSuffix(" (US)") else { return nil }
            s = String(s.dropLast(5)); pattern = "M/d/yyyy"
        case .slashDayFirst:
            guard s.hasSuffix(" (day first)") else { return nil }
            s = String(s.dropLast(12)); pattern = "dd/MM/yyyy"
        case .dayMonthYear: pattern = "d MMMM yyyy"
        case .compact: pattern = "yyyyMMdd"
        case .monthAbbrevDotComma: pattern = "MMM. d, yyyy"
        case .shortWeekdayDayMonth: pattern = "EEE d MMM yyyy"
        case .ordinalWords:
            let words = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
                         "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth"]
            let tens = ["twenty": 20, "thirty": 30]
            let parts = s.split(separator: " ")  // the <ordinal> of <Month> <year>
            guard parts.count == 5, parts[0] == "the", parts[2] == "of" else { return nil }
            let word = String(parts[1])
            var day: Int?
            if let i = words.firstIndex(of: word) { day = i + 1 }
            else if word == "twentieth" { day = 20 } else if word == "thirtieth" { day = 30 }
            else if let dash = word.firstIndex(of: "-"), let base = tens[String(word[..<dash])],
                    let unit = words.firstIndex(of: String(word[word.index(after: dash)...])), unit < 9 { day = base + unit + 1 }
            guard let day else { return nil }
            s = "\(day) \(parts[3]) \(parts[4])"; pattern = "d MMMM yyyy"
        }
        formatter.dateFormat = pattern
        guard let date = formatter.date(from: s) else { return nil }
        formatter.dateFormat = "yyyy-MM-dd"
        return formatter.string(from: date)
    }

    func testEveryFormReadsBackAsTheSameDateWithTheRightWeekday() throws {
        XCTAssertGreaterThanOrEqual(DateForm.allCases.count, 10)
        let edge = [(2000, 2, 29), (1950, 1, 1), (2049, 12, 31), (2021, 3, 5), (1999, 12, 31), (2012, 11, 11), (2023, 1, 22), (2024, 10, 3)]
            .map { CalendarDate(year: $0.0, month: $0.1, day: $0.2)! }
        var rng = RandomGenerator(seed: 4)
        let sample = edge + (0..<120).map { _ in CalendarDate(dayNumber: -7305 + Int(rng.nextUInt64() % 36_524)) }
        let calendar: Calendar = { var c = Calendar(identifier: .gregorian); c.timeZone = TimeZone(identifier: "UTC")!; return c }()
        for form in DateForm.allCases {
            for date in sample where form.canWrite(date) {
                let text = form.write(date)
                guard let parsed = Self.parse(text, form: form) else { XCTFail("\(form): cannot read back \"\(text)\""); continue }
                XCTAssertEqual(parsed, date.iso, "\(form): \"\(text)\"")
                // The weekday printed in the text is the true one (checked against Foundation's calendar).
                let components = DateComponents(year: date.year, month: date.month, day: date.day)
                let weekday = calendar.component(.weekday, from: calendar.date(from: components)!)  // 1 = Sunday
                let name = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"][weekday - 1]
                if form == .weekdayMonthDayYear { XCTAssertTrue(text.hasPrefix(name + ", "), text) }
                if form == .shortWeekdayDayMonth { XCTAssertTrue(text.hasPrefix(name.prefix(3) + " "), text) }
            }
        }
        XCTAssertEqual(DateForm.weekdayMonthDayYear.write(CalendarDate(year: 2021, month: 3, day: 5)!), "Friday, March 5, 2021")
        XCTAssertEqual(DateForm.ordinalOfMonth.write(CalendarDate(year: 2021, month: 3, day: 5)!), "the 5th of March, 2021")
        XCTAssertEqual(DateForm.monthAbbrevTwoDigitYear.write(CalendarDate(year: 2021, month: 3, day: 5)!), "Mar 5 '21")
        XCTAssertEqual((1...31).map(DateForm.ordinal).filter { !$0.hasSuffix("th") }, ["1st", "2nd", "3rd", "21st", "22nd", "23rd", "31st"])
        XCTAssertFalse(DateForm.monthAbbrevTwoDigitYear.canWrite(CalendarDate(year: 1999, month: 1, day: 1)!))
    }

    func testDayNumbersRoundTripAcrossCenturies() {
        XCTAssertEqual(CalendarDate(dayNumber: 0).iso, "1970-01-01")
        XCTAssertEqual(CalendarDate(dayNumber: 0).weekdayIndex, 3)  // Thursday
        XCTAssertEqual(CalendarDate(year: 2000, month: 3, day: 1)!.dayNumber - CalendarDate(year: 2000, month: 2, day: 28)!.dayNumber, 2)
        XCTAssertEqual(CalendarDate(year: 1900, month: 3, day: 1)!.dayNumber - CalendarDate(year: 1900, month: 2, day: 28)!.dayNumber, 1)
        XCTAssertNil(CalendarDate(year: 2021, month: 2, day: 29))
        for n in stride(from: -200_000, through: 200_000, by: 997) { XCTAssertEqual(CalendarDate(dayNumber: n).dayNumber, n) }
    }

    func testSplitsAreDisjointDeterministicAndWritten() throws {
        let task = DateNormalizationTask(seed: 3)
        let a = try task.splits(train: 400, valid: 50, test: 50)
        let b = try DateNormalizationTask(seed: 3).splits(train: 400, valid: 50, test: 50)
        let c = try DateNormalizationTask(seed: 4).splits(train: 400, valid: 50, test: 50)
        XCTAssertEqual(a.train, b.train); XCTAssertEqual(a.valid, b.valid); XCTAssertEqual(a.test, b.test)
        XCTAssertNotEqual(a.train, c.train)
        let dates = [a.train, a.valid, a.test].map { Set($0.map(\.date)) }
        XCTAssertEqual(dates.map(\.count), [400, 50, 50], "dates are distinct within each split")
        XCTAssertTrue(dates[0].isDisjoint(with: dates[1]) && dates[0].isDisjoint(with: dates[2]) && dates[1].isDisjoint(with: dates[2]))
        XCTAssertEqual(Set(a.train.map(\.form)).count, DateForm.allCases.count, "every form appears in training")
        for e in a.train { XCTAssertEqual(e.prompt, "Normalize this date to ISO format: " + e.text); XCTAssertEqual(e.answer, e.date.iso) }
        XCTAssertThrowsError(try task.splits(train: 40_000, valid: 0, test: 0))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("lorakit-dates-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try task.write(to: dir, train: 20, valid: 5, test: 5, format: .messages)
        let splits = try TrainingDataSplits.load(dir)
        XCTAssertEqual(splits.train.examples.count, 20)
        let first = try task.splits(train: 20, valid: 5, test: 5).train[0]
        XCTAssertEqual(splits.train.examples[0], .chat([.user(first.prompt), .assistant(first.answer)]))
        try task.write(to: dir, train: 20, valid: 5, test: 5, format: .completion)
        XCTAssertEqual(try TrainingDataSplits.load(dir).test?.examples.count, 5)
        XCTAssertEqual(try TrainingDataFile.load(dir.appendingPathComponent("train.jsonl")).examples[0],
                       .promptCompletion(prompt: first.prompt, completion: first.answer))
    }

    func testExactMatchAccuracy() throws {
        let file = try TrainingDataFile.parse(Data("""
            {"messages": [{"role": "user", "content": "Normalize this date to ISO format: 5.3.2021"}, {"role": "assistant", "content": "2021-03-05"}]}
            {"messages": [{"role": "user", "content": "Normalize this date to ISO format: 20000229"}, {"role": "assistant", "content": "2000-02-29"}]}
            {"messages": [{"role": "user", "content": "Normalize this date to ISO format: Mar 5 '21"}, {"role": "assistant", "content": "2021-03-05"}]}
            """.utf8), path: "test.jsonl")
        let cases = try ExactMatch.cases(from: file)
        XCTAssertEqual(cases[1].prompt, "Normalize this date to ISO format: 20000229")
        XCTAssertEqual(cases[1].messages, [.user("Normalize this date to ISO format: 20000229")])
        let outputs = ["  2021-03-05\nExplanation: ...", "2000-02-28", "\n2021-03-05<|im_end|>"]
        var i = 0
        let report = ExactMatch.evaluate(cases) { _ in defer { i += 1 }; return outputs[i] }
        XCTAssertEqual(report.results.map(\.correct), [true, false, false])  // the third keeps a marker on its line
        XCTAssertEqual(report.accuracy, 1.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(ExactMatch.normalize("\n  2021-03-05  \nmore"), "2021-03-05")
        XCTAssertThrowsError(try ExactMatch.cases(from: TrainingDataFile.parse(Data("{\"text\": \"a\"}".utf8), path: "t.jsonl"))) {
            XCTAssertTrue("\($0)".hasPrefix("t.jsonl:1:"))
        }
    }
}
