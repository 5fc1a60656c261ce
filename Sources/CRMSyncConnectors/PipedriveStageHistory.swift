import CRMSyncCore
import Foundation

/// Rebuilds a deal's stage history from its flow. Pipedrive records a stage move as a `stage_id`
/// change and a close as a `status` change (the stage id stays put), so the history is replayed as
/// the deal's *effective* stage: its status once won or lost, its stage id otherwise. These are
/// the keys `Mappings/pipedrive.yaml` maps (`"3"`, `won`, `lost`). Entries are stamped with
/// Pipedrive's own change times.
public enum PipedriveStageHistory {
    public struct Change: Sendable, Equatable {
        public var field: String
        public var old: String?
        public var new: String?
        public var at: Date
        /// Pipedrive's change id: orders changes logged in the same second.
        public var order: Int64

        public init(field: String, old: String?, new: String?, at: Date, order: Int64 = 0) {
            self.field = field
            self.old = old
            self.new = new
            self.at = at
            self.order = order
        }
    }

    public static func effective(stageID: String?, status: String?) -> String? {
        status == "won" || status == "lost" ? status : stageID
    }

    /// - Parameters:
    ///   - addedAt: the deal's `add_time`, when it entered its first stage.
    ///   - stageID, status: the deal as it is now, for deals whose flow never changed them.
    ///   - changes: `stage_id` and `status` changes in any order (the flow lists newest first).
    public static func rebuild(addedAt: Date?, stageID: String?, status: String?, changes: [Change]) -> [StageChange] {
        let relevant = changes.filter { $0.field == "stage_id" || $0.field == "status" }
            .sorted { ($0.at, $0.order) < ($1.at, $1.order) }
        // Before the first change the deal was in that change's old value; a first change from
        // nothing is the creation itself. Without changes, the deal is where it always was.
        let firstStage = relevant.first { $0.field == "stage_id" }
        let firstStatus = relevant.first { $0.field == "status" }
        var currentStage = firstStage.map(\.old) ?? stageID
        var currentStatus = firstStatus.map(\.old) ?? status
        var history: [StageChange] = []
        var last = effective(stageID: currentStage, status: currentStatus)
        if let start = addedAt ?? relevant.first?.at, let stage = last {
            history.append(StageChange(stage: stage, enteredAt: CRMTimestamp.normalized(start)))
        }
        // Changes logged in the same second are one edit: a reopen that also moves the stage
        // enters only the new stage.
        var index = relevant.startIndex
        while index < relevant.endIndex {
            let at = relevant[index].at
            while index < relevant.endIndex, relevant[index].at == at {
                let change = relevant[index]
                if change.field == "stage_id" { currentStage = change.new } else { currentStatus = change.new }
                index += 1
            }
            let now = effective(stageID: currentStage, status: currentStatus)
            if let now, now != last {
                history.append(StageChange(stage: now, enteredAt: CRMTimestamp.normalized(at)))
            }
            last = now
        }
        return history
    }
}
