import CRMSyncCore
import CRMSyncStorage
import Foundation

/// `crm-sync report html`: one self-contained page (inline CSS and SVG, no script, no network) for
/// managers: ROI by campaign under each model, the funnel, e-mail rates by sequence step, nurture
/// status, stalled prospects and SLA breaches. Money is never summed across currencies.
public enum HTMLReport {
    static let models = ["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay"]

    public static func render(_ dashboard: Dashboard, title: String = "crm-sync: marketing programme report") -> String {
        var body = "<h1>\(HTML.escape(title))</h1>"
        body += #"<p class="meta">Generated \#(HTML.escape(CRMTimestamp.iso(dashboard.generatedAt))) from the reporting views. ROI = (attributed revenue × gross margin − cost) ÷ cost.</p>"#
        body += summary(dashboard)
        body += roiSection(dashboard)
        body += funnelSection(dashboard)
        body += emailSection(dashboard)
        body += nurtureSection(dashboard)
        body += stalledSection(dashboard)
        body += breachSection(dashboard)
        return """
            <!DOCTYPE html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(HTML.escape(title))</title>
            <style>\(style)</style></head>
            <body>\(body)</body></html>
            """
    }

    static let style = """
        body{font-family:system-ui,-apple-system,"Segoe UI","Noto Sans","Noto Sans CJK JP",sans-serif;margin:24px auto;max-width:920px;color:#222}
        h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
        h3{font-size:14px;margin:16px 0 4px}.meta{color:#666;font-size:12px}
        .cards{display:flex;flex-wrap:wrap;gap:12px;margin:16px 0}.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;min-width:150px}
        .card b{display:block;font-size:20px}.card span{color:#666;font-size:12px}
        svg text{font-size:11px;fill:#333}svg .label{font-size:12px}svg .legend{font-size:12px}svg .axis{stroke:#888;stroke-width:1}
        table{border-collapse:collapse;font-size:12px;margin:8px 0}th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left}
        td.num{text-align:right;font-variant-numeric:tabular-nums}.empty{color:#888;font-style:italic}
        details summary{cursor:pointer;color:#4e79a7;font-size:12px}
        """

    // MARK: Sections

    static func summary(_ dashboard: Dashboard) -> String {
        var cards: [(String, String)] = []
        let linear = dashboard.roi.filter { $0.model == "linear" }
        for currency in Set(linear.map(\.currency)).sorted() {
            let rows = linear.filter { $0.currency == currency }
            let cost = rows.compactMap { Decimal(string: $0.cost) }.reduce(0, +)
            let profit = rows.compactMap { Decimal(string: $0.attributedGrossProfit) }.reduce(0, +)
            let revenue = rows.compactMap { Decimal(string: $0.attributedRevenue) }.reduce(0, +)
            cards.append((ROIReport.money("\(revenue)") + " " + currency, "attributed revenue (linear)"))
            cards.append((ROIReport.money("\(cost)") + " " + currency, "programme cost"))
            if cost > 0 {
                let roi = (profit - cost) / cost
                cards.append((ROIReport.percent("\(roi)"), "ROI in \(currency) (linear)"))
            }
        }
        cards.append(("\(dashboard.unattributedWonDeals)", "won deals without any touch"))
        cards.append(("\(dashboard.stalled.count)", "stalled prospects"))
        cards.append(("\(dashboard.breaches.count)", "SLA breaches"))
        return #"<div class="cards">"# + cards.map { #"<div class="card"><b>\#(HTML.escape($0.0))</b><span>\#(HTML.escape($0.1))</span></div>"# }.joined() + "</div>"
    }

    static func roiSection(_ dashboard: Dashboard) -> String {
        var out = "<h2>ROI by campaign, per attribution model</h2>"
        guard !dashboard.roi.isEmpty else { return out + empty("No campaign has costs or attributed deals yet.") }
        for currency in Set(dashboard.roi.map(\.currency)).sorted() {
            let rows = dashboard.roi.filter { $0.currency == currency }
            let campaigns = Set(rows.map(\.campaign)).sorted()
            let chart = BarChart(
                series: models,
                groups: campaigns.map { campaign in
                    .init(label: campaign, values: models.map { model in
                        rows.first { $0.campaign == campaign && $0.model == model }?.roi.flatMap(Double.init).map { $0 * 100 }
                    })
                },
                format: { String(format: "%.0f%%", $0) })
            out += "<h3>\(HTML.escape(currency))</h3>" + chart.svg(title: "ROI by campaign in \(currency)")
            out += "<details><summary>figures</summary>" + HTML.table(
                ["model", "campaign", "cost", "deals", "won", "revenue", "gross profit", "ROI"],
                rows.map { [$0.model, $0.campaign, ROIReport.money($0.cost), "\($0.influencedDeals)", "\($0.wonDeals)",
                            ROIReport.money($0.attributedRevenue), ROIReport.money($0.attributedGrossProfit), ROIReport.percent($0.roi)] },
                numericFrom: 2) + "</details>"
        }
        if !dashboard.models.isEmpty {
            out += "<h3>How each model splits a won deal's amount</h3>" + HTML.table(["model", "weights"], dashboard.models.map { [$0.model, $0.description] }, numericFrom: 2)
        }
        let noCost = Set(dashboard.roi.filter { $0.roi == nil && $0.wonDeals > 0 }.map(\.campaign))
        if !noCost.isEmpty {
            out += #"<p class="meta">No ROI without a cost: \#(HTML.escape(noCost.sorted().joined(separator: ", "))). Import costs with <code>crm-sync costs import</code>.</p>"#
        }
        return out
    }

    static func funnelSection(_ dashboard: Dashboard) -> String {
        var out = "<h2>Pipeline funnel by canonical stage</h2>"
        guard !dashboard.funnel.isEmpty else { return out + empty("No stage history yet: run a sync.") }
        let order = Dictionary(uniqueKeysWithValues: CanonicalStage.allCases.enumerated().map { ($1.rawValue, $0) })
        let pipelines = Set(dashboard.funnel.map { "\($0.connector) · \($0.pipeline)" }).sorted()
        for pipeline in pipelines {
            let stages = dashboard.funnel.filter { "\($0.connector) · \($0.pipeline)" == pipeline }
                .sorted { (order[$0.stage] ?? 99) < (order[$1.stage] ?? 99) }
            let chart = BarChart(
                series: ["deals entered", "advanced further"],
                groups: stages.map { .init(label: $0.stage, values: [Double($0.entered), Double($0.advanced)]) },
                format: { String(Int($0)) })
            out += "<h3>\(HTML.escape(pipeline))</h3>" + chart.svg(title: "Funnel of \(pipeline)")
            out += HTML.table(["stage", "entered", "advanced", "conversion", "median days in stage"], stages.map {
                [$0.stage, "\($0.entered)", "\($0.advanced)", rate($0.conversionRate), $0.medianDays.map { String(format: "%.1f", $0) } ?? "–"]
            })
        }
        return out
    }

    static func emailSection(_ dashboard: Dashboard) -> String {
        var out = "<h2>E-mail by sequence step</h2>"
        guard !dashboard.email.isEmpty else { return out + empty("No sequence e-mail events yet.") }
        let chart = BarChart(
            series: ["open rate", "click rate", "unsubscribe rate"],
            groups: dashboard.email.map { .init(label: "\($0.sequence) · step \($0.step)", values: [$0.openRate, $0.clickRate, $0.unsubscribeRate].map { $0.map { $0 * 100 } }) },
            format: { String(format: "%.1f%%", $0) }, barHeight: 11)
        out += chart.svg(title: "Open, click and unsubscribe rate by sequence step")
        out += "<details><summary>figures</summary>" + HTML.table(["sequence", "step", "sent", "open", "click", "unsubscribe"], dashboard.email.map {
            [$0.sequence, "\($0.step)", "\($0.sent)", rate($0.openRate), rate($0.clickRate), rate($0.unsubscribeRate)]
        }) + "</details>"
        return out
    }

    static func nurtureSection(_ dashboard: Dashboard) -> String {
        let out = "<h2>Nurture sequences</h2>"
        guard !dashboard.nurture.isEmpty else { return out + empty("No enrollments yet.") }
        let statuses = Set(dashboard.nurture.map(\.status)).sorted()
        let sequences = Set(dashboard.nurture.map(\.sequence)).sorted()
        let chart = BarChart(
            series: statuses,
            groups: sequences.map { sequence in
                .init(label: sequence, values: statuses.map { status in
                    dashboard.nurture.first { $0.sequence == sequence && $0.status == status }.map { Double($0.contacts) }
                })
            },
            format: { String(Int($0)) }, barHeight: 11)
        return out + chart.svg(title: "Contacts per sequence and status")
    }

    static func stalledSection(_ dashboard: Dashboard) -> String {
        var out = "<h2>Stalled prospects</h2>"
        guard !dashboard.stalled.isEmpty else { return out + empty("No stalled prospects.") }
        let owners = Dictionary(grouping: dashboard.stalled) { $0.owner ?? "(no owner)" }
        let chart = BarChart(
            series: ["stalled prospects"],
            groups: owners.keys.sorted().map { .init(label: $0, values: [Double(owners[$0]!.count)]) },
            format: { String(Int($0)) })
        out += chart.svg(title: "Stalled prospects per owner")
        out += HTML.table(["contact", "owner", "stage", "days since sales touch", "reactivated"], dashboard.stalled.prefix(200).map {
            ["\($0.connector):\($0.contact)", $0.owner ?? "–", $0.stage ?? "–", $0.daysSinceSalesTouch.map(String.init) ?? "–", $0.reactivated ? "yes" : "no"]
        }, numericFrom: 3)
        return out
    }

    static func breachSection(_ dashboard: Dashboard) -> String {
        var out = "<h2>SLA breaches</h2>"
        guard !dashboard.breaches.isEmpty else { return out + empty("No SLA breaches.") }
        let owners = Dictionary(grouping: dashboard.breaches) { $0.owner ?? "(no owner)" }
        let chart = BarChart(
            series: ["breaches", "average hours late"],
            groups: owners.keys.sorted().map { owner in
                let late = owners[owner]!.compactMap(\.hoursLate)
                return .init(label: owner, values: [Double(owners[owner]!.count), late.isEmpty ? nil : late.reduce(0, +) / Double(late.count)])
            },
            format: { String(format: "%.1f", $0) })
        out += chart.svg(title: "SLA breaches per owner")
        out += HTML.table(["contact", "owner", "handed off", "hours late"], dashboard.breaches.prefix(200).map {
            ["\($0.connector):\($0.contact)", $0.owner ?? "–", CRMTimestamp.iso($0.handedOffAt), $0.hoursLate.map { String(format: "%.1f", $0) } ?? "–"]
        }, numericFrom: 3)
        return out
    }

    static func empty(_ text: String) -> String { #"<p class="empty">\#(HTML.escape(text))</p>"# }

    static func rate(_ value: Double?) -> String { value.map { String(format: "%.1f%%", $0 * 100) } ?? "–" }
}
