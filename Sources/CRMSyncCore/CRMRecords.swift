import Foundation

/// Which CRM a connector talks to.
public enum CRMKind: String, Sendable, Codable, CaseIterable {
    case hubspot
    case salesforce
    case pipedrive
}

/// The kinds of record a connector syncs, in the order a sync run visits them: records that others
/// refer to come first so a run that stops half way leaves fewer dangling references.
public enum ObjectType: String, Sendable, Codable, CaseIterable, Comparable {
    case owners
    case accounts
    case contacts
    case deals
    /// Stage changes reported apart from their deal (Salesforce `OpportunityHistory`).
    case stageHistory = "stage_history"
    /// Deal↔contact links reported apart from their deal (Salesforce `OpportunityContactRole`).
    case dealContacts = "deal_contacts"
    case activities
    case campaigns
    case campaignMembers = "campaign_members"

    public static func < (lhs: ObjectType, rhs: ObjectType) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// A sales person in the CRM.
public struct CRMOwner: Sendable, Equatable, Codable {
    public var externalID: String
    public var email: String?
    public var name: String?
    public var modifiedAt: Date
    public var deleted: Bool

    public init(externalID: String, email: String?, name: String?, modifiedAt: Date, deleted: Bool = false) {
        self.externalID = externalID
        self.email = email
        self.name = name
        self.modifiedAt = modifiedAt
        self.deleted = deleted
    }
}

/// A company / organisation / account.
public struct CRMAccount: Sendable, Equatable, Codable {
    public var externalID: String
    public var name: String?
    public var domain: String?
    public var owner: String?
    public var modifiedAt: Date
    public var deleted: Bool
    public var mergedInto: String?

    public init(
        externalID: String, name: String?, domain: String?, owner: String?, modifiedAt: Date,
        deleted: Bool = false, mergedInto: String? = nil
    ) {
        self.externalID = externalID
        self.name = name
        self.domain = domain
        self.owner = owner
        self.modifiedAt = modifiedAt
        self.deleted = deleted
        self.mergedInto = mergedInto
    }
}

/// A person: HubSpot contact, Salesforce Contact or Lead, Pipedrive person.
public struct CRMContact: Sendable, Equatable, Codable {
    public var externalID: String
    public var email: String?
    public var name: String?
    public var company: String?
    public var accountID: String?
    public var owner: String?
    public var lifecycleStage: String?
    public var modifiedAt: Date
    public var deleted: Bool
    public var mergedInto: String?

    public init(
        externalID: String, email: String?, name: String?, company: String?, accountID: String? = nil,
        owner: String?, lifecycleStage: String? = nil, modifiedAt: Date, deleted: Bool = false,
        mergedInto: String? = nil
    ) {
        self.externalID = externalID
        self.email = email
        self.name = name
        self.company = company
        self.accountID = accountID
        self.owner = owner
        self.lifecycleStage = lifecycleStage
        self.modifiedAt = modifiedAt
        self.deleted = deleted
        self.mergedInto = mergedInto
    }
}

/// A stage a deal entered, at the CRM's own time.
public struct StageChange: Sendable, Equatable, Hashable, Codable {
    public var stage: String
    public var enteredAt: Date

    public init(stage: String, enteredAt: Date) {
        self.stage = stage
        self.enteredAt = enteredAt
    }
}

/// A deal / opportunity, as the CRM holds it now, with the stage history the CRM reported.
public struct CRMDeal: Sendable, Equatable, Codable {
    public var externalID: String
    public var name: String?
    /// Kept as the CRM's decimal text so no binary floating point ever touches money.
    public var amount: Decimal?
    public var currency: String?
    public var pipeline: String?
    public var stage: String?
    public var owner: String?
    public var createdAt: Date?
    public var closedAt: Date?
    public var modifiedAt: Date
    public var deleted: Bool
    public var mergedInto: String?
    /// IDs of records the CRM merged into this one: they are marked deleted and point here.
    public var mergedFrom: [String]
    public var grossMargin: Decimal?
    public var contactIDs: [String]
    public var accountIDs: [String]
    /// Oldest first, in the CRM's own order: entries that share a timestamp keep their places.
    public var stageHistory: [StageChange]

    public init(
        externalID: String, name: String? = nil, amount: Decimal? = nil, currency: String? = nil,
        pipeline: String? = nil, stage: String? = nil, owner: String? = nil, createdAt: Date? = nil,
        closedAt: Date? = nil, modifiedAt: Date, deleted: Bool = false, mergedInto: String? = nil,
        mergedFrom: [String] = [], grossMargin: Decimal? = nil, contactIDs: [String] = [],
        accountIDs: [String] = [], stageHistory: [StageChange] = []
    ) {
        self.externalID = externalID
        self.name = name
        self.amount = amount
        self.currency = currency
        self.pipeline = pipeline
        self.stage = stage
        self.owner = owner
        self.createdAt = createdAt
        self.closedAt = closedAt
        self.modifiedAt = modifiedAt
        self.deleted = deleted
        self.mergedInto = mergedInto
        self.mergedFrom = mergedFrom
        self.grossMargin = grossMargin
        self.contactIDs = contactIDs
        self.accountIDs = accountIDs
        self.stageHistory = stageHistory
    }
}

/// What a sales activity was; calls, meetings and sales e-mails silence marketing.
public enum ActivityKind: String, Sendable, Codable, CaseIterable {
    case call
    case meeting
    case email
    case task
    case note
}

/// A sales activity logged in the CRM.
public struct CRMActivity: Sendable, Equatable, Codable {
    public var externalID: String
    public var kind: ActivityKind
    public var subject: String?
    public var owner: String?
    public var contactIDs: [String]
    public var dealIDs: [String]
    public var occurredAt: Date
    public var modifiedAt: Date
    public var deleted: Bool

    public init(
        externalID: String, kind: ActivityKind, subject: String? = nil, owner: String?, contactIDs: [String],
        dealIDs: [String] = [], occurredAt: Date, modifiedAt: Date, deleted: Bool = false
    ) {
        self.externalID = externalID
        self.kind = kind
        self.subject = subject
        self.owner = owner
        self.contactIDs = contactIDs
        self.dealIDs = dealIDs
        self.occurredAt = occurredAt
        self.modifiedAt = modifiedAt
        self.deleted = deleted
    }
}

/// A marketing campaign the CRM knows about (Salesforce Campaign), with the cost it records.
public struct CRMCampaign: Sendable, Equatable, Codable {
    public var externalID: String
    public var name: String
    public var actualCost: Decimal?
    public var budgetedCost: Decimal?
    public var currency: String?
    public var startDate: Date?
    public var modifiedAt: Date
    public var deleted: Bool

    public init(
        externalID: String, name: String, actualCost: Decimal?, budgetedCost: Decimal?, currency: String?,
        startDate: Date?, modifiedAt: Date, deleted: Bool = false
    ) {
        self.externalID = externalID
        self.name = name
        self.actualCost = actualCost
        self.budgetedCost = budgetedCost
        self.currency = currency
        self.startDate = startDate
        self.modifiedAt = modifiedAt
        self.deleted = deleted
    }
}

/// Membership of a contact in a CRM campaign: a marketing touch from the CRM's side.
public struct CRMCampaignMember: Sendable, Equatable, Codable {
    public var externalID: String
    public var campaignID: String
    public var contactID: String
    public var status: String?
    public var joinedAt: Date
    public var modifiedAt: Date
    public var deleted: Bool

    public init(
        externalID: String, campaignID: String, contactID: String, status: String?, joinedAt: Date,
        modifiedAt: Date, deleted: Bool = false
    ) {
        self.externalID = externalID
        self.campaignID = campaignID
        self.contactID = contactID
        self.status = status
        self.joinedAt = joinedAt
        self.modifiedAt = modifiedAt
        self.deleted = deleted
    }
}

/// One page of changes from a CRM, of any record kinds. The sync engine writes a batch and the
/// cursor that covers it in one transaction.
public struct RecordBatch: Sendable, Equatable {
    public var owners: [CRMOwner] = []
    public var accounts: [CRMAccount] = []
    public var contacts: [CRMContact] = []
    public var deals: [CRMDeal] = []
    public var activities: [CRMActivity] = []
    public var campaigns: [CRMCampaign] = []
    public var campaignMembers: [CRMCampaignMember] = []
    /// Stage changes that arrive without their deal (Salesforce `OpportunityHistory` rows).
    public var stageChanges: [DealStageChange] = []
    /// Deal↔contact links that arrive without their deal (Salesforce `OpportunityContactRole` rows).
    public var dealContactLinks: [DealContactLink] = []
    /// Whether `deals` carry their complete contact links, which then replace the stored ones
    /// (HubSpot). False when links arrive as rows of their own in `dealContactLinks` (Salesforce):
    /// writing such a deal must leave its stored links alone.
    public var dealsCarryContactLinks = true
    /// Records the CRM reports as deleted without a full body (delete logs, archived lists).
    public var deletions: [Deletion] = []

    public init() {}

    public var count: Int {
        owners.count + accounts.count + contacts.count + deals.count + activities.count + campaigns.count
            + campaignMembers.count + stageChanges.count + dealContactLinks.count + deletions.count
    }
}

/// A record the CRM deleted (or merged away), as its delete channel reports it.
public struct Deletion: Sendable, Equatable, Hashable, Codable {
    public var objectType: ObjectType
    public var externalID: String
    public var deletedAt: Date
    public var mergedInto: String?

    public init(objectType: ObjectType, externalID: String, deletedAt: Date, mergedInto: String? = nil) {
        self.objectType = objectType
        self.externalID = externalID
        self.deletedAt = deletedAt
        self.mergedInto = mergedInto
    }
}
