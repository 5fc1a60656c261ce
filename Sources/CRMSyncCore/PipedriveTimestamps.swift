import Foundation

/// Pipedrive's two timestamp spellings, both UTC and both to the whole second: v2 writes RFC 3339
/// (`2026-01-14T18:16:56Z`) and rejects fractional seconds in `updated_since`; v1 writes
/// `2026-01-14 18:16:56`. Parsing either is `CRMTimestamp.parse`.
extension CRMTimestamp {
    /// RFC 3339 without a fraction, rounded *down* to the second: as a `>=` bound it may read a
    /// little more, never less.
    public static func rfc3339Seconds(_ date: Date) -> String {
        String(iso(floorToSecond(date)).prefix(19)) + "Z"
    }

    /// `YYYY-MM-DD HH:MM:SS` (Pipedrive v1).
    public static func pipedriveV1(_ date: Date) -> String {
        let text = iso(floorToSecond(date))
        return text.prefix(10) + " " + text.dropFirst(11).prefix(8)
    }

    public static func floorToSecond(_ date: Date) -> Date {
        let ms = millis(date)
        return fromMillis(ms - ((ms % 1000) + 1000) % 1000)
    }
}
