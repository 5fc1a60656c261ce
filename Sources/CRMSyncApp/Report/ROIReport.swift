import CRMSyncStorage
import Foundation

/// Renders `reporting.roi_by_campaign` rows for people (table) and programs (csv, json).
public enum ROIReport {
    public enum Format: String, CaseIterable, Sendable {
        case table, csv, json
    }

    public static func render(_ rows: [ROIRow], format: Format) -> String {
        switch format {
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            return String(decoding: (try? encoder.encode(rows)) ?? Data("[]".utf8), as: UTF8.self)
        case .csv:
            // The view's columns in its order: workspace last.
            var lines = ["model,campaign,currency,cost,influenced_deals,won_deals,attributed_revenue,attributed_gross_profit,roi,workspace"]
            for row in rows {
                lines.append([row.model, csvField(row.campaign), row.currency, row.cost, "\(row.influencedDeals)", "\(row.wonDeals)",
                              row.attributedRevenue, row.attributedGrossProfit, row.roi ?? "", row.workspace].joined(separator: ","))
            }
            return lines.joined(separator: "\n")
        case .table:
            // One business unit reads as before; several get a workspace column, since the same
            // campaign name can appear in each.
            let workspaces = Set(rows.map(\.workspace))
            let showWorkspace = workspaces.count > 1 || workspaces.contains { $0 != "default" }
            let header = (showWorkspace ? ["workspace"] : [])
                + ["model", "campaign", "currency", "cost", "deals", "won", "revenue", "gross profit", "ROI"]
            let textColumns = showWorkspace ? 4 : 3
            let body = rows.map { row in
                (showWorkspace ? [row.workspace] : [])
                    + [row.model, row.campaign, row.currency, money(row.cost), "\(row.influencedDeals)", "\(row.wonDeals)",
                       money(row.attributedRevenue), money(row.attributedGrossProfit), percent(row.roi)]
            }
            let widths = header.indices.map { column in ([header[column]] + body.map { $0[column] }).map(\.count).max() ?? 0 }
            func line(_ cells: [String]) -> String {
                cells.enumerated().map { index, cell in
                    index < textColumns ? cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
                        : String(repeating: " ", count: widths[index] - cell.count) + cell
                }.joined(separator: "  ")
            }
            var out = [line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")]
            out += body.map(line)
            if rows.isEmpty { out.append("(no campaigns with costs or attributed deals yet)") }
            return out.joined(separator: "\n")
        }
    }

    static func csvField(_ text: String) -> String {
        text.contains(",") || text.contains("\"") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    /// Thousands separators on the decimal text, without converting it to a float.
    static func money(_ text: String) -> String {
        let parts = text.split(separator: ".", maxSplits: 1)
        let whole = String(parts.first ?? "0")
        let negative = whole.hasPrefix("-")
        let digits = Array(negative ? String(whole.dropFirst()) : whole)
        var grouped = ""
        for (index, digit) in digits.enumerated() {
            if index > 0, (digits.count - index) % 3 == 0 { grouped.append(",") }
            grouped.append(digit)
        }
        let fraction = parts.count > 1 ? String(parts[1]).replacingOccurrences(of: #"0+$"#, with: "", options: .regularExpression) : ""
        return (negative ? "-" : "") + grouped + (fraction.isEmpty ? "" : "." + fraction.prefix(2))
    }

    static func percent(_ ratio: String?) -> String {
        guard let ratio, let value = Decimal(string: ratio, locale: Locale(identifier: "en_US_POSIX")) else { return "n/a" }
        var scaled = value * 100
        var rounded = Decimal()
        NSDecimalRound(&rounded, &scaled, 1, .plain)
        return "\(NSDecimalNumber(decimal: rounded).stringValue)%"
    }
}
