import CRMSyncCore
import Foundation
import Yams

/// Reads `Mappings/sequences/*.yaml` (one sequence per file) and the holiday calendars they name.
/// Every problem is one `ConfigError` naming the file, the key and what is wrong.
public enum SequenceLoader {
    public static let engagementEvents: Set<String> = [
        "email.sent", "email.delivered", "email.opened", "email.clicked", "email.unsubscribed", "email.bounced",
        "form.submitted", "page.viewed", "webinar.attended", "meeting.booked",
    ]

    /// All `*.yaml` files of a directory, in name order; names must be unique.
    public static func loadDirectory(_ directory: String) throws(ConfigError) -> [NurtureSequence] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
        } catch {
            throw ConfigError(file: directory, key: "", problem: "cannot read the sequences directory")
        }
        var sequences: [NurtureSequence] = []
        var seen: [String: String] = [:]
        for file in files {
            let path = URL(fileURLWithPath: directory).appendingPathComponent(file).path
            let sequence = try load(path: path)
            if let other = seen[sequence.name] {
                throw ConfigError(file: path, key: "name", problem: "'\(sequence.name)' is also defined in \(other)")
            }
            seen[sequence.name] = path
            sequences.append(sequence)
        }
        return sequences
    }

    public static func load(path: String) throws(ConfigError) -> NurtureSequence {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, key: "", problem: "cannot read the sequence file")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text: text, file: path) { (relative) throws(ConfigError) in
            let holidays = relative.hasPrefix("/") ? relative : URL(fileURLWithPath: directory).appendingPathComponent(relative).path
            return try loadHolidays(path: holidays)
        }
    }

    /// `holidays` turns the file's `holidays:` value into (calendar name, dates).
    public static func parse(
        text: String, file: String, holidays: (String) throws(ConfigError) -> (name: String, dates: Set<LocalDate>)
    ) throws(ConfigError) -> NurtureSequence {
        let root = try YAMLMap.document(file: file, text: text)
        try root.rejectUnknown(allowed: [
            "name", "description", "trigger", "time_zone", "send_window", "holidays", "steps", "tracks", "branches", "goals",
            "reenroll_after",
        ])
        let name = try root.requiredString("name")
        guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
            throw root.error("name", "use letters, digits, '-' and '_' only")
        }
        guard let triggerMap = try root.map("trigger") else { throw root.error("trigger", "is required") }
        let trigger = try parseTrigger(triggerMap)

        let zoneName = try root.requiredString("time_zone")
        guard let zone = TimeZone(identifier: zoneName) else {
            throw root.error("time_zone", "unknown time zone '\(zoneName)' (expected an IANA name such as Asia/Tokyo)")
        }
        let windowText = try root.string("send_window") ?? "09:00-18:00"
        guard let window = SendWindow(windowText) else {
            throw root.error("send_window", "expected HH:MM-HH:MM with the start before the end, got '\(windowText)'")
        }
        var calendar = BusinessCalendar(name: "weekdays", timeZone: zone, window: window)
        if let holidayFile = try root.string("holidays") {
            let loaded = try holidays(holidayFile)
            calendar.name = loaded.name
            calendar.holidays = loaded.dates
        }

        var tracks: [String: [NurtureSequence.Step]] = [:]
        guard root.value("steps") != nil else { throw root.error("steps", "is required (3 to 7 steps)") }
        tracks[NurtureSequence.mainTrack] = try parseSteps(root, key: "steps", main: true)
        if let trackMap = try root.map("tracks") {
            for entry in try root.entriesOf("tracks") {
                guard entry.key != NurtureSequence.mainTrack else {
                    throw ConfigError(file: file, line: entry.line, key: "tracks.main", problem: "the main track is `steps`")
                }
                tracks[entry.key] = try parseSteps(trackMap, key: entry.key, main: false)
            }
        }
        var numbers: Set<Int> = []
        for track in tracks.keys.sorted() {
            for step in tracks[track]! where !numbers.insert(step.step).inserted {
                throw root.error(track == NurtureSequence.mainTrack ? "steps" : "tracks.\(track)",
                                 "step number \(step.step) is used twice (number each track's steps apart, e.g. 1-4 and 21-23)")
            }
        }

        var branches: [NurtureSequence.Branch] = []
        for item in try root.list("branches") {
            let map = try YAMLMap(file: file, path: item.path, node: item.node)
            try map.rejectUnknown(allowed: ["after_step", "if", "link", "page", "within_days", "goto"])
            guard let after = try map.int("after_step") else { throw map.error("after_step", "is required") }
            guard numbers.contains(after) else { throw map.error("after_step", "no step \(after) in this sequence") }
            let conditionText = try map.requiredString("if")
            guard let condition = NurtureSequence.Branch.Condition(rawValue: conditionText) else {
                throw map.error("if", "unknown condition '\(conditionText)' (expected \(NurtureSequence.Branch.Condition.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            var matching = try map.string("link")
            if matching == nil { matching = try map.string("page") }
            if (condition == .clicked || condition == .viewed), matching == nil {
                throw map.error(condition == .clicked ? "link" : "page", "is required for if: \(conditionText)")
            }
            guard let within = try map.int("within_days"), within > 0 else { throw map.error("within_days", "is required (a whole number of days above 0)") }
            let target = try map.requiredString("goto")
            guard tracks[target] != nil else { throw map.error("goto", "no track '\(target)' (define it under tracks)") }
            branches.append(.init(afterStep: after, condition: condition, matching: matching, withinDays: within, track: target))
        }

        var goals: [NurtureSequence.Goal] = []
        for item in try root.list("goals") {
            let map = try YAMLMap(file: file, path: item.path, node: item.node)
            try map.rejectUnknown(allowed: ["event", "asset", "stage"])
            if let stageText = try map.string("stage") {
                guard let stage = CanonicalStage(rawValue: stageText) else { throw map.error("stage", MappingLoader.unknownStage(stageText)) }
                goals.append(.stage(stage))
            } else {
                let event = try map.requiredString("event")
                try checkEvent(map, "event", event)
                goals.append(.event(type: event, asset: try map.string("asset")))
            }
        }
        let reenrollAfter = try root.duration("reenroll_after")
        if let reenrollAfter, reenrollAfter < .seconds(86_400) {
            throw root.error("reenroll_after", "must be at least 1d (a contact re-entering sooner would get the same mails again)")
        }
        if reenrollAfter != nil, trigger == .stalled {
            throw root.error("reenroll_after", "a stalled-prospect sequence is entered once per stall, not by its own trigger")
        }
        return NurtureSequence(
            name: name, description: try root.string("description"), trigger: trigger, tracks: tracks,
            branches: branches, goals: goals, calendar: calendar, reenrollAfter: reenrollAfter)
    }

    static func checkEvent(_ map: YAMLMap, _ key: String, _ event: String) throws(ConfigError) {
        guard engagementEvents.contains(event) else {
            throw map.error(key, "unknown event type '\(event)' (expected one of: \(engagementEvents.sorted().joined(separator: ", ")))")
        }
    }

    static func parseTrigger(_ map: YAMLMap) throws(ConfigError) -> NurtureSequence.Trigger {
        try map.rejectUnknown(allowed: ["event", "asset", "stage", "page", "dormant_days", "stalled"])
        let given = ["event", "stage", "page", "dormant_days", "stalled"].filter { map.value($0) != nil }
        guard given.count == 1 else {
            throw ConfigError(file: map.file, line: map.line, key: map.path,
                              problem: "name exactly one of event, stage, page, dormant_days, stalled (got \(given.isEmpty ? "none" : given.joined(separator: ", ")))")
        }
        if let stalled = try map.string("stalled") {
            guard stalled == "true" else { throw map.error("stalled", "expected true") }
            return .stalled
        }
        if let event = try map.string("event") {
            try checkEvent(map, "event", event)
            return .event(type: event, asset: try map.string("asset"))
        }
        if let stageText = try map.string("stage") {
            guard let stage = CanonicalStage(rawValue: stageText) else { throw map.error("stage", MappingLoader.unknownStage(stageText)) }
            return .stage(stage)
        }
        if let page = try map.string("page") { return .event(type: "page.viewed", asset: page) }
        guard let days = try map.int("dormant_days"), days > 0 else { throw map.error("dormant_days", "expected a whole number of days above 0") }
        return .dormant(days: days)
    }

    static func parseSteps(_ parent: YAMLMap, key: String, main: Bool) throws(ConfigError) -> [NurtureSequence.Step] {
        let items = try parent.list(key)
        let range = main ? 3...7 : 1...7
        guard range.contains(items.count) else {
            throw parent.error(key, "expected \(range.lowerBound) to \(range.upperBound) steps, got \(items.count)")
        }
        var steps: [NurtureSequence.Step] = []
        for (index, item) in items.enumerated() {
            let map = try YAMLMap(file: parent.file, path: item.path, node: item.node)
            try map.rejectUnknown(allowed: ["step", "delay_business_days", "subject"])
            let number = try map.int("step") ?? (index + 1)
            guard number > 0 else { throw map.error("step", "must be above 0") }
            guard let delay = try map.int("delay_business_days"), (0...60).contains(delay) else {
                throw map.error("delay_business_days", "is required (0 to 60)")
            }
            steps.append(.init(step: number, delayBusinessDays: delay, subject: try map.requiredString("subject")))
        }
        return steps
    }

    /// `Mappings/holidays/<name>.yaml`: `name:` and `holidays:` (a list of `{date: YYYY-MM-DD, name: …}`).
    public static func loadHolidays(path: String) throws(ConfigError) -> (name: String, dates: Set<LocalDate>) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, key: "", problem: "cannot read the holiday calendar")
        }
        let root = try YAMLMap.document(file: path, text: text)
        try root.rejectUnknown(allowed: ["name", "description", "holidays"])
        let name = try root.requiredString("name")
        var dates: Set<LocalDate> = []
        for item in try root.list("holidays") {
            let map = try YAMLMap(file: path, path: item.path, node: item.node)
            try map.rejectUnknown(allowed: ["date", "name"])
            let dateText = try map.requiredString("date")
            guard let date = LocalDate(dateText) else { throw map.error("date", "expected a date YYYY-MM-DD, got '\(dateText)'") }
            dates.insert(date)
        }
        return (name, dates)
    }
}
