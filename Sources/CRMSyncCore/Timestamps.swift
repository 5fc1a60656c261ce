import Foundation

/// Parses the timestamp shapes the CRMs send: ISO 8601 with or without fractional seconds and with
/// `Z`, `+09:00` or Salesforce's `+0000`; epoch milliseconds (HubSpot v1, webhooks); plain dates.
public enum CRMTimestamp {
    /// Parses and normalises to whole milliseconds, so the same instant always compares equal
    /// whichever shape it arrived in (the cursor's tie logic depends on exact equality).
    public static func parse(_ text: String) -> Date? {
        parseRaw(text).map(normalized)
    }

    /// The same instant as a `Date` built from its epoch milliseconds.
    public static func normalized(_ date: Date) -> Date {
        fromMillis(millis(date))
    }

    static func parseRaw(_ text: String) -> Date? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return nil }
        if trimmed.allSatisfy(\.isNumber), let millis = Int64(trimmed) {
            return fromMillis(millis)
        }
        if let date = try? Date(trimmed, strategy: isoFractional) { return date }
        if let date = try? Date(trimmed, strategy: isoPlain) { return date }
        // Salesforce writes `2026-11-02T01:23:45.000+0000`: insert the colon ISO 8601 expects.
        if trimmed.count > 5 {
            let tail = trimmed.suffix(5)
            if (tail.first == "+" || tail.first == "-"), tail.dropFirst().allSatisfy(\.isNumber) {
                let fixed = trimmed.dropLast(2) + ":" + tail.suffix(2)
                if let date = try? Date(String(fixed), strategy: isoFractional) { return date }
                if let date = try? Date(String(fixed), strategy: isoPlain) { return date }
            }
        }
        if trimmed.count == 10, let date = try? Date(trimmed + "T00:00:00Z", strategy: isoPlain) { return date }
        // `2026-11-02 01:23:45` (Pipedrive v1) is UTC.
        if trimmed.count == 19, trimmed.dropFirst(10).first == " " {
            let iso = trimmed.prefix(10) + "T" + trimmed.suffix(8) + "Z"
            if let date = try? Date(String(iso), strategy: isoPlain) { return date }
        }
        return nil
    }

    public static func fromMillis(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    /// Epoch milliseconds, rounded to the nearest millisecond (dates built from millis round-trip).
    public static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    /// ISO 8601 in UTC with milliseconds, the way HubSpot v3 writes it. Computed from integer
    /// milliseconds: Foundation's formatter truncates the floating-point fraction and can lose a
    /// millisecond, which would break ties and equality with the CRM's stamps.
    public static func iso(_ date: Date) -> String {
        let millis = millis(date)
        let days = millis >= 0 ? millis / 86_400_000 : (millis - 86_399_999) / 86_400_000
        let msOfDay = millis - days * 86_400_000
        let date = LocalDate(daysSinceEpoch: Int(days))
        func pad(_ value: Int64, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(date)T\(pad(msOfDay / 3_600_000, 2)):\(pad(msOfDay / 60_000 % 60, 2)):\(pad(msOfDay / 1000 % 60, 2)).\(pad(msOfDay % 1000, 3))Z"
    }

    public static let isoFractional = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    public static let isoPlain = Date.ISO8601FormatStyle()
}

/// Parses durations such as `90s`, `5m`, `24h`, `14d`, `1h30m`, and `250ms`.
public enum DurationText {
    public static func parse(_ text: String) -> Duration? {
        var total: Int64 = 0
        var number = ""
        var unit = ""
        var sawAny = false
        func flush() -> Bool {
            guard let value = Int64(number) else { return false }
            let millis: Int64
            switch unit {
            case "ms": millis = value
            case "s": millis = value * 1000
            case "m": millis = value * 60_000
            case "h": millis = value * 3_600_000
            case "d": millis = value * 86_400_000
            default: return false
            }
            total += millis
            number = ""
            unit = ""
            sawAny = true
            return true
        }
        for character in text.trimmingCharacters(in: .whitespaces) {
            if character.isNumber {
                if !unit.isEmpty { guard flush() else { return nil } }
                number.append(character)
            } else if character.isLetter {
                guard !number.isEmpty else { return nil }
                unit.append(character)
            } else {
                return nil
            }
        }
        guard !number.isEmpty, flush(), sawAny else { return nil }
        return .milliseconds(total)
    }
}

extension Duration {
    /// Seconds as a floating value, for APIs that take `TimeInterval`.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}
