// Text as Unicode scalars with a class byte per scalar, the input of the pre-tokenizer scanners.

/// Bits of a scalar's class byte.
enum ScalarClass {
    /// \p{L}: Lu, Ll, Lt, Lm, Lo.
    static let letter: UInt8 = 1
    /// \p{N}: Nd, Nl, No.
    static let number: UInt8 = 2
    /// \s: the White_Space property.
    static let whitespace: UInt8 = 4
    /// \r or \n.
    static let newline: UInt8 = 8
    /// U+0020 itself (the optional " ?" of the expressions).
    static let space: UInt8 = 16
    /// [^\s\p{L}\p{N}]: neither whitespace, letter nor number (punctuation, symbols, marks, controls).
    static let other: UInt8 = 32
    /// [\p{P}$+<=>^~|]: llama.cpp's default punctuation class.
    static let defaultPunctuation: UInt8 = 64
    /// [0-9].
    static let asciiDigit: UInt8 = 128

    /// Class byte of a scalar; the Basic Multilingual Plane comes from a table built once.
    @inline(__always)
    static func of(_ scalar: Unicode.Scalar) -> UInt8 {
        let v = scalar.value
        return v < 0x10000 ? basicPlane[Int(v)] : compute(scalar)
    }

    /// Class bytes of U+0000...U+FFFF: [65536].
    private static let basicPlane: [UInt8] = (0..<0x10000).map { v in
        guard let s = Unicode.Scalar(UInt32(v)) else { return other }   // surrogates never occur in text
        return compute(s)
    }

    private static func compute(_ scalar: Unicode.Scalar) -> UInt8 {
        let properties = scalar.properties
        var bits: UInt8 = 0
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            bits |= letter
        case .decimalNumber, .letterNumber, .otherNumber:
            bits |= number
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
             .initialPunctuation, .finalPunctuation, .otherPunctuation:
            bits |= defaultPunctuation
        default:
            break
        }
        if properties.isWhitespace { bits |= whitespace }
        if bits & (letter | number | whitespace) == 0 { bits |= other }
        switch scalar.value {
        case 0x0A, 0x0D: bits |= newline
        case 0x20: bits |= space
        case 0x30...0x39: bits |= asciiDigit
        case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: bits |= defaultPunctuation   // $ + < = > ^ ~ |
        default: break
        }
        return bits
    }
}

/// A run of text as scalars plus their class bytes (both [count]).
struct ScalarText {
    var scalars: [Unicode.Scalar]
    var classes: [UInt8]

    init<S: Sequence>(_ source: S) where S.Element == Unicode.Scalar {
        scalars = Array(source)
        classes = scalars.map(ScalarClass.of)
    }

    var count: Int { scalars.count }

    @inline(__always)
    func isASCIIDigit(_ i: Int) -> Bool { classes[i] & ScalarClass.asciiDigit != 0 }
}
