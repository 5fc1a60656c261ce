import Foundation

/// A horizontal grouped bar chart as inline SVG: no script, no network, so the report opens from
/// a mail attachment or a file share and prints as it looks. Negative values (a campaign that lost
/// money) extend left of the zero line.
struct BarChart {
    struct Group {
        var label: String
        var values: [Double?]     // one per series; nil: no bar (e.g. ROI without cost)
    }

    var series: [String]
    var groups: [Group]
    var format: (Double) -> String
    var barHeight = 14.0
    var labelWidth = 210.0
    var width = 860.0

    static let palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#edc948", "#9c755f"]

    func svg(title: String) -> String {
        let plotLeft = labelWidth + 10
        let plotWidth = width - plotLeft - 90
        let all = groups.flatMap { $0.values.compactMap { $0 } }
        let low = min(0, all.min() ?? 0), high = max(0, all.max() ?? 0)
        let span = high - low == 0 ? 1 : high - low
        func x(_ value: Double) -> Double { plotLeft + (value - low) / span * plotWidth }
        let groupHeight = Double(series.count) * barHeight + 10
        let legendHeight = series.count > 1 ? 24.0 : 0
        let height = legendHeight + Double(groups.count) * groupHeight + 24
        var out = #"<svg xmlns="http://www.w3.org/2000/svg" role="img" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))">"#
        out += "<title>\(HTML.escape(title))</title>"
        if series.count > 1 {
            var legendX = plotLeft
            for (index, name) in series.enumerated() {
                out += #"<rect x="\#(legendX)" y="4" width="12" height="12" fill="\#(Self.color(index))"/>"#
                out += #"<text x="\#(legendX + 16)" y="14" class="legend">\#(HTML.escape(name))</text>"#
                legendX += 24 + Double(name.count) * 7
            }
        }
        let zero = x(0)
        for (row, group) in groups.enumerated() {
            let top = legendHeight + Double(row) * groupHeight
            out += #"<text x="\#(labelWidth)" y="\#(top + groupHeight / 2 + 2)" text-anchor="end" class="label">\#(HTML.escape(Self.clip(group.label)))</text>"#
            for (index, value) in group.values.enumerated() {
                guard let value else { continue }
                let y = top + 5 + Double(index) * barHeight
                let start = min(x(value), zero), end = max(x(value), zero)
                out += #"<rect x="\#(start)" y="\#(y)" width="\#(max(end - start, 1))" height="\#(barHeight - 2)" fill="\#(Self.color(index))"><title>\#(HTML.escape("\(group.label) · \(series[index]): \(format(value))"))</title></rect>"#
                let textX = value < 0 ? start - 4 : end + 4
                out += #"<text x="\#(textX)" y="\#(y + barHeight - 4)" text-anchor="\#(value < 0 ? "end" : "start")" class="value">\#(HTML.escape(format(value)))</text>"#
            }
        }
        let bottom = legendHeight + Double(groups.count) * groupHeight
        out += #"<line x1="\#(zero)" y1="\#(legendHeight)" x2="\#(zero)" y2="\#(bottom)" class="axis"/>"#
        out += "</svg>"
        return out
    }

    static func color(_ index: Int) -> String { palette[index % palette.count] }

    static func clip(_ text: String) -> String { text.count > 30 ? String(text.prefix(29)) + "…" : text }
}

enum HTML {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }

    static func table(_ header: [String], _ rows: [[String]], numericFrom: Int = 1) -> String {
        var out = "<table><thead><tr>" + header.map { "<th>\(escape($0))</th>" }.joined() + "</tr></thead><tbody>"
        for row in rows {
            out += "<tr>" + row.enumerated().map { index, cell in
                index >= numericFrom ? #"<td class="num">\#(escape(cell))</td>"# : "<td>\(escape(cell))</td>"
            }.joined() + "</tr>"
        }
        return out + "</tbody></table>"
    }
}
