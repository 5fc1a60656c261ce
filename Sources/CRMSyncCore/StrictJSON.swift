import Foundation

/// An RFC 8259 JSON reader for bodies from the outside world.
///
/// Foundation's `JSONSerialization` accepts trailing commas and turns `true` into an `NSNumber`
/// that reads as `1`, so a malformed or mistyped webhook body could be stored and only fail later.
/// This reader accepts exactly RFC 8259 and returns Swift's own types, which never convert into
/// one another: objects `[String: Any]`, arrays `[Any]`, `String`, `Int` (integers that fit),
/// `Double` (other finite numbers), `Bool` and `NSNull`. It also refuses duplicate keys (two
/// readers could pick different values) and nesting deeper than `maxDepth`.
/// The result can be re-encoded with `JSONSerialization.data(withJSONObject:)`.
public struct StrictJSON {
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        /// What is wrong and at which byte offset; never quotes the input.
        public var description: String
    }

    public static let maxDepth = 64

    /// The value of `data`, or an error naming the first byte that is not RFC 8259 JSON.
    public static func parse(_ data: Data) throws(ParseError) -> Any {
        var reader = StrictJSON(bytes: Array(data))
        reader.skipWhitespace()
        let value = try reader.value(depth: 0)
        reader.skipWhitespace()
        guard reader.index == reader.bytes.count else { throw reader.error("unexpected data after the JSON value") }
        return value
    }

    private let bytes: [UInt8]
    private var index = 0

    private init(bytes: [UInt8]) { self.bytes = bytes }

    private func error(_ what: String) -> ParseError { ParseError(description: "\(what) at byte \(index)") }

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { index += 1 }
    }

    private mutating func value(depth: Int) throws(ParseError) -> Any {
        guard depth < Self.maxDepth else { throw error("JSON nested deeper than \(Self.maxDepth) levels") }
        switch current {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): try literal("true"); return true
        case UInt8(ascii: "f"): try literal("false"); return false
        case UInt8(ascii: "n"): try literal("null"); return NSNull()
        case .some(let byte) where byte == UInt8(ascii: "-") || (0x30...0x39).contains(byte): return try number()
        case nil: throw error("the JSON ends too early")
        default: throw error("unexpected character")
        }
    }

    private mutating func literal(_ word: StaticString) throws(ParseError) {
        let expected = word.withUTF8Buffer { Array($0) }
        guard bytes.count - index >= expected.count, Array(bytes[index..<index + expected.count]) == expected else {
            throw error("unexpected character")
        }
        index += expected.count
    }

    private mutating func object(depth: Int) throws(ParseError) -> [String: Any] {
        index += 1
        var result: [String: Any] = [:]
        skipWhitespace()
        if current == UInt8(ascii: "}") { index += 1; return result }
        while true {
            skipWhitespace()
            guard current == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let key = try string()
            skipWhitespace()
            guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
            index += 1
            skipWhitespace()
            // Named (cut to 64 bytes): which member is repeated is what the sender needs to know.
            guard result[key] == nil else { throw error("duplicate member \"\(String(decoding: key.utf8.prefix(64), as: UTF8.self))\"") }
            result[key] = try value(depth: depth + 1)
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "}"): index += 1; return result
            default: throw error("expected ',' or '}'")
            }
        }
    }

    private mutating func array(depth: Int) throws(ParseError) -> [Any] {
        index += 1
        var result: [Any] = []
        skipWhitespace()
        if current == UInt8(ascii: "]") { index += 1; return result }
        while true {
            skipWhitespace()
            result.append(try value(depth: depth + 1))
            skipWhitespace()
            switch current {
            case UInt8(ascii: ","): index += 1
            case UInt8(ascii: "]"): index += 1; return result
            default: throw error("expected ',' or ']'")
            }
        }
    }

    private mutating func number() throws(ParseError) -> Any {
        let start = index
        var integral = true
        if current == UInt8(ascii: "-") { index += 1 }
        guard let first = current, (0x30...0x39).contains(first) else { throw error("malformed number") }
        index += 1
        if first != 0x30 { skipDigits() }
        if current == UInt8(ascii: ".") {
            integral = false
            index += 1
            guard try requireDigit() else { throw error("malformed number") }
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            index += 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
            guard try requireDigit() else { throw error("malformed number") }
        }
        let text = String(decoding: bytes[start..<index], as: UTF8.self)
        if integral, let int = Int(text) { return int }
        guard let double = Double(text), double.isFinite else { throw error("number out of range") }
        return double
    }

    private mutating func skipDigits() {
        while let byte = current, (0x30...0x39).contains(byte) { index += 1 }
    }

    private mutating func requireDigit() throws(ParseError) -> Bool {
        guard let byte = current, (0x30...0x39).contains(byte) else { return false }
        skipDigits()
        return true
    }

    private mutating func string() throws(ParseError) -> String {
        index += 1
        var scalars = String.UnicodeScalarView()
        var runStart = index
        while true {
            guard let byte = current else { throw error("unterminated string") }
            switch byte {
            case UInt8(ascii: "\""):
                try appendRun(from: runStart, to: &scalars)
                index += 1
                return String(scalars)
            case UInt8(ascii: "\\"):
                try appendRun(from: runStart, to: &scalars)
                index += 1
                scalars.append(try escape())
                runStart = index
            case 0x00..<0x20:
                throw error("control character in a string")
            default:
                index += 1
            }
        }
    }

    /// Appends the unescaped bytes `runStart..<index`, which must be valid UTF-8.
    private func appendRun(from runStart: Int, to scalars: inout String.UnicodeScalarView) throws(ParseError) {
        guard runStart < index else { return }
        var iterator = bytes[runStart..<index].makeIterator()
        var decoder = UTF8()
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .emptyInput: return
            case .error: throw ParseError(description: "invalid UTF-8 in a string at byte \(runStart)")
            }
        }
    }

    private mutating func escape() throws(ParseError) -> Unicode.Scalar {
        guard let byte = current else { throw error("unterminated string") }
        index += 1
        switch byte {
        case UInt8(ascii: "\""): return "\""
        case UInt8(ascii: "\\"): return "\\"
        case UInt8(ascii: "/"): return "/"
        case UInt8(ascii: "b"): return "\u{08}"
        case UInt8(ascii: "f"): return "\u{0C}"
        case UInt8(ascii: "n"): return "\n"
        case UInt8(ascii: "r"): return "\r"
        case UInt8(ascii: "t"): return "\t"
        case UInt8(ascii: "u"): return try unicodeEscape()
        default: throw error("invalid escape")
        }
    }

    /// `\uXXXX`, with a surrogate pair read as one scalar; a lone surrogate is an error.
    private mutating func unicodeEscape() throws(ParseError) -> Unicode.Scalar {
        let high = try hex4()
        if (0xDC00...0xDFFF).contains(high) { throw error("unpaired surrogate") }
        guard (0xD800...0xDBFF).contains(high) else { return Unicode.Scalar(high)! }
        guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
            throw error("unpaired surrogate")
        }
        index += 2
        let low = try hex4()
        guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate") }
        return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))!
    }

    private mutating func hex4() throws(ParseError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw error("invalid \\u escape") }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Self.hexValue(bytes[index]) else { throw error("invalid \\u escape") }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt32? {
        switch byte {
        case 0x30...0x39: UInt32(byte - 0x30)
        case 0x41...0x46: UInt32(byte - 0x41 + 10)
        case 0x61...0x66: UInt32(byte - 0x61 + 10)
        default: nil
        }
    }
}
