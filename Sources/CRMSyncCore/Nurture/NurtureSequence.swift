import Foundation

/// One step-mail scenario, as `Mappings/sequences/*.yaml` defines it: a trigger, tracks of 3–7
/// steps, branches between tracks, goals that end it, and when it may send.
public struct NurtureSequence: Sendable, Equatable {
    public enum Trigger: Sendable, Equatable {
        /// An engagement event (`form.submitted`, `webinar.attended`, `page.viewed`…), optionally only
        /// for one asset: the event's campaign equals it, or its URL contains it.
        case event(type: String, asset: String?)
        /// A contact's deal enters this canonical stage (e.g. `closed_lost`).
        case stage(CanonicalStage)
        /// No touch (engagement event or sales activity) for this many days.
        case dormant(days: Int)
        /// Only the engine enrols: a stalled prospect (the mappings' `reactivation_sequence`).
        case stalled
    }

    public struct Step: Sendable, Equatable {
        /// Unique within the sequence (tracks number their steps apart, e.g. 1–4 and 21–23), so an
        /// engagement event's `step` names exactly one e-mail.
        public var step: Int
        public var delayBusinessDays: Int
        public var subject: String

        public init(step: Int, delayBusinessDays: Int, subject: String) {
            self.step = step
            self.delayBusinessDays = delayBusinessDays
            self.subject = subject
        }
    }

    public struct Branch: Sendable, Equatable {
        public enum Condition: String, Sendable, CaseIterable {
            case opened, notOpened = "not_opened", clicked, viewed
        }
        /// Evaluated while this step is the last one sent.
        public var afterStep: Int
        public var condition: Condition
        /// A URL substring: the clicked link or the viewed page.
        public var matching: String?
        /// The wait window after the step was sent.
        public var withinDays: Int
        /// The track to switch to; it starts at its first step.
        public var track: String

        public init(afterStep: Int, condition: Condition, matching: String? = nil, withinDays: Int, track: String) {
            self.afterStep = afterStep
            self.condition = condition
            self.matching = matching
            self.withinDays = withinDays
            self.track = track
        }
    }

    public enum Goal: Sendable, Equatable {
        /// e.g. `meeting.booked`, or `form.submitted` with the quote-request form as asset.
        case event(type: String, asset: String?)
        /// A deal of the contact reaches this canonical stage.
        case stage(CanonicalStage)
    }

    public static let mainTrack = "main"

    public var name: String
    public var description: String?
    public var trigger: Trigger
    /// `main` and any branch tracks, each an ordered list of steps.
    public var tracks: [String: [Step]]
    public var branches: [Branch]
    public var goals: [Goal]
    public var calendar: BusinessCalendar
    /// A contact whose enrolment ended at least this long ago may enter again when the trigger
    /// fires anew; nil: once per contact, ever.
    public var reenrollAfter: Duration?

    public init(
        name: String, description: String? = nil, trigger: Trigger, tracks: [String: [Step]], branches: [Branch] = [],
        goals: [Goal] = [], calendar: BusinessCalendar, reenrollAfter: Duration? = nil
    ) {
        self.reenrollAfter = reenrollAfter
        self.name = name
        self.description = description
        self.trigger = trigger
        self.tracks = tracks
        self.branches = branches
        self.goals = goals
        self.calendar = calendar
    }

    /// Every step of every track, with the track and its position (1-based) in it.
    public var allSteps: [(track: String, position: Int, step: Step)] {
        tracks.keys.sorted().flatMap { track in
            tracks[track]!.enumerated().map { (track, $0.offset + 1, $0.element) }
        }
    }
}

/// The nurture policy of one connector: its mapping's sales-owned stages and its policy block.
public struct ConnectorNurturePolicy: Sendable, Equatable {
    public var connector: String
    public var salesOwned: Set<CanonicalStage>
    public var policy: NurturePolicy

    public init(connector: String, salesOwned: Set<CanonicalStage>, policy: NurturePolicy) {
        self.connector = connector
        self.salesOwned = salesOwned
        self.policy = policy
    }
}
