import CRMSyncCore
import Foundation
import Yams

/// Reads a `Mappings/<crm>.yaml` file: stage ladder mapping, sales-owned stages, nurture policy.
public enum MappingLoader {
    public static func load(path: String) throws(ConfigError) -> StageMapping {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, key: "", problem: "cannot read the mapping file")
        }
        return try parse(text: text, file: path)
    }

    public static func parse(text: String, file: String) throws(ConfigError) -> StageMapping {
        let root = try YAMLMap.document(file: file, text: text)
        try root.rejectUnknown(allowed: ["crm", "pipelines", "sales_owned", "fields", "policy"])
        let crmText = try root.requiredString("crm")
        guard let crm = CRMKind(rawValue: crmText) else {
            throw root.error("crm", "unknown CRM '\(crmText)' (expected \(CRMKind.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var pipelines: [String: StageMapping.Pipeline] = [:]
        guard let pipelineMap = try root.map("pipelines") else { throw root.error("pipelines", "is required") }
        for entry in try root.entriesOf("pipelines") {
            let pipeline = try YAMLMap(file: file, path: "\(pipelineMap.keyPath(entry.key))", node: entry.value)
            try pipeline.rejectUnknown(allowed: ["label", "stages"])
            var stages: [String: CanonicalStage] = [:]
            guard try pipeline.map("stages") != nil else { throw pipeline.error("stages", "is required") }
            for stage in try pipeline.entriesOf("stages") {
                let key = "\(pipeline.keyPath("stages")).\(stage.key)"
                guard let name = stage.value.string else {
                    throw ConfigError(file: file, line: stage.line, key: key, problem: "expected a canonical stage name")
                }
                guard let canonical = CanonicalStage(rawValue: name) else {
                    throw ConfigError(file: file, line: stage.line, key: key, problem: unknownStage(name))
                }
                stages[stage.key] = canonical
            }
            pipelines[entry.key] = .init(id: entry.key, label: try pipeline.string("label"), stages: stages)
        }
        var salesOwned: Set<CanonicalStage> = []
        for name in try root.stringList("sales_owned") {
            guard let stage = CanonicalStage(rawValue: name) else { throw root.error("sales_owned", unknownStage(name)) }
            salesOwned.insert(stage)
        }
        var marginField: String?
        if let fields = try root.map("fields") {
            try fields.rejectUnknown(allowed: ["gross_margin"])
            marginField = try fields.string("gross_margin")
        }
        let policy = try root.map("policy").map { (map) throws(ConfigError) in try parsePolicy(map) } ?? NurturePolicy()
        return StageMapping(
            crm: crm, pipelines: pipelines, salesOwned: salesOwned, grossMarginField: marginField, policy: policy)
    }

    static func unknownStage(_ name: String) -> String {
        "unknown canonical stage '\(name)' (expected one of: \(CanonicalStage.allCases.map(\.rawValue).joined(separator: ", ")))"
    }

    static func parsePolicy(_ map: YAMLMap) throws(ConfigError) -> NurturePolicy {
        try map.rejectUnknown(allowed: ["silent_period", "stall_after", "reactivation_sequence", "scoring", "handoff"])
        var policy = NurturePolicy()
        if let silent = try map.map("silent_period") {
            try silent.rejectUnknown(allowed: ["sales_activity_window", "activities", "max"])
            if let window = try silent.duration("sales_activity_window") { policy.salesActivityWindow = window }
            if let max = try silent.duration("max") { policy.maxSilentPeriod = max }
            if silent.value("activities") != nil {
                var kinds: Set<ActivityKind> = []
                for name in try silent.stringList("activities") {
                    guard let kind = ActivityKind(rawValue: name) else {
                        throw silent.error("activities", "unknown activity '\(name)' (expected \(ActivityKind.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    kinds.insert(kind)
                }
                policy.silencingActivities = kinds
            }
        }
        if let stall = try map.duration("stall_after") { policy.stallAfter = stall }
        policy.reactivationSequence = try map.string("reactivation_sequence")
        for item in try map.list("scoring") {
            let rule = try YAMLMap(file: map.file, path: item.path, node: item.node)
            try rule.rejectUnknown(allowed: ["event", "matching", "points"])
            guard let points = try rule.int("points") else { throw rule.error("points", "is required") }
            policy.scoring.append(.init(event: try rule.requiredString("event"), matching: try rule.string("matching"), points: points))
        }
        if let handoff = try map.map("handoff") {
            try handoff.rejectUnknown(allowed: ["threshold", "sla", "escalate_to"])
            if let threshold = try handoff.int("threshold") { policy.handoffThreshold = threshold }
            if let sla = try handoff.duration("sla") { policy.slaFirstTouch = sla }
            if let owner = try handoff.string("escalate_to") {
                guard !owner.isEmpty else { throw handoff.error("escalate_to", "must name a CRM owner id") }
                policy.slaEscalateTo = owner
            }
        }
        return policy
    }
}
