// GPT-2's byte-level alphabet: every byte 0...255 is shown as one printable Unicode scalar, so that a
// vocabulary of strings can hold arbitrary bytes. Printable Latin-1 bytes ('!'...'~', '¡'...'¬', '®'...'ÿ')
// stand for themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) are shifted to
// U+0100 onwards in byte order, which is why a space appears as "Ġ" (U+0120) and a newline as "Ċ".

/// The byte ⇄ scalar mapping of byte-level BPE vocabularies.
public enum ByteLevelAlphabet {
    /// scalar value for each byte: [256].
    public static let scalarForByte: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var shifted: UInt32 = 256
        for byte in 0..<256 {
            if standsForItself(UInt8(byte)) {
                table[byte] = UInt32(byte)
            } else {
                table[byte] = shifted
                shifted += 1
            }
        }
        return table
    }()

    /// The byte each scalar below U+0144 stands for, or -1: [324].
    static let byteForScalar: [Int16] = {
        var table = [Int16](repeating: -1, count: 324)
        for byte in 0..<256 { table[Int(scalarForByte[byte])] = Int16(byte) }
        return table
    }()

    /// The byte-level symbol of `byte` as a one-character string ("Ġ" for a space).
    public static func symbol(for byte: UInt8) -> String {
        String(Character(Unicode.Scalar(scalarForByte[Int(byte)])!))
    }

    /// The byte that `scalar` stands for, or nil if it is not in the alphabet.
    public static func byte(for scalar: Unicode.Scalar) -> UInt8? {
        let v = Int(scalar.value)
        guard v < byteForScalar.count, byteForScalar[v] >= 0 else { return nil }
        return UInt8(byteForScalar[v])
    }

    /// The byte-level form of UTF-8 bytes ("a b" → "aĠb").
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var scalars = String.UnicodeScalarView()
        for b in bytes { scalars.append(Unicode.Scalar(scalarForByte[Int(b)])!) }
        return String(scalars)
    }

    /// Bytes of a byte-level string; scalars outside the alphabet are kept as their own UTF-8 bytes
    /// (some vocabularies store a few tokens verbatim).
    public static func decode(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            if let b = byte(for: scalar) { out.append(b) } else { out.append(contentsOf: String(scalar).utf8) }
        }
        return out
    }

    private static func standsForItself(_ b: UInt8) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
    }
}
