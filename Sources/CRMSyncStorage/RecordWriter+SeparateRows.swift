import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

// Rows some CRMs report apart from the records they belong to (Salesforce: OpportunityHistory,
// OpportunityContactRole, Campaign, CampaignMember). Same rules as the rest of the writer: one
// JSON parameter per statement, idempotent, never older over newer.
extension RecordWriter {
    /// Stage history from rows of its own. Salesforce writes an `OpportunityHistory` row for changes
    /// to amount, close date and probability too, repeating the current stage: a row whose stage is
    /// the one the deal was already in (the row before it in this page, or the latest stored entry
    /// before it) is not a stage entry and is left out. Keyed like all history, so replays add nothing.
    func writeStageChanges(
        _ changes: [DealStageChange], outcome: inout Outcome, on connection: PostgresConnection, logger: Logger
    ) async throws {
        // By deal and time; rows that share a timestamp keep the page's order (the CRM's).
        let ordered = changes.uniqued().enumerated()
            .sorted { ($0.element.dealID, $0.element.change.enteredAt, $0.offset) < ($1.element.dealID, $1.element.change.enteredAt, $1.offset) }
            .map(\.element)
        var rows: [HistoryRow] = []
        var previous: (deal: String, stage: String)?
        for (order, item) in ordered.enumerated() {
            defer { previous = (item.dealID, item.change.stage) }
            if let previous, previous.deal == item.dealID, previous.stage == item.change.stage { continue }
            let canonical = mapping.canonicalStage(pipeline: item.pipeline, stage: item.change.stage)
            if canonical == nil { outcome.unmappedStages.insert(item.change.stage) }
            rows.append(HistoryRow(deal_external_id: item.dealID, stage: item.change.stage,
                                   canonical_stage: canonical?.rawValue, entered_at: item.change.enteredAt, crm_order: order + 1))
        }
        let inserted = try await connection.query(
            PostgresQuery(unsafeSQL: """
                INSERT INTO crm.stage_history (connector, deal_external_id, stage, canonical_stage, entered_at, source, crm_order)
                SELECT $1, r.deal_external_id, r.stage, r.canonical_stage, r.entered_at, 'poll', r.crm_order
                  FROM json_to_recordset($2::json)
                    AS r(deal_external_id text, stage text, canonical_stage text, entered_at timestamptz, crm_order integer)
                 WHERE r.stage IS DISTINCT FROM (
                        SELECT h.stage FROM crm.stage_history h
                         WHERE h.connector = $1 AND h.deal_external_id = r.deal_external_id AND h.entered_at < r.entered_at
                         ORDER BY h.entered_at DESC LIMIT 1)
                ON CONFLICT DO NOTHING
                RETURNING 1
                """, binds: try Self.binds(connector, Self.json(rows))),
            logger: logger
        ).collect()
        outcome.stageChanges += inserted.count
    }

    /// Deal↔contact links from rows of their own: added, or taken out when the CRM deleted the row.
    /// A pair that this page both removes and adds (two roles, one deleted) stays linked.
    func writeDealContactLinks(_ links: [DealContactLink], on connection: PostgresConnection, logger: Logger) async throws {
        var kept: [String: LinkRow] = [:]
        var removed: [String: LinkRow] = [:]
        for link in links {
            let key = "\(link.dealID)\u{1}\(link.contactID)"
            let row = LinkRow(deal_external_id: link.dealID, other: link.contactID)
            if link.removed { removed[key] = row } else { kept[key] = row }
        }
        let removals = removed.filter { kept[$0.key] == nil }.map(\.value)
        if !removals.isEmpty {
            try await connection.query(
                PostgresQuery(unsafeSQL: """
                    DELETE FROM crm.deal_contacts d
                     USING json_to_recordset($2::json) AS r(deal_external_id text, other text)
                     WHERE d.connector = $1 AND d.deal_external_id = r.deal_external_id AND d.contact_external_id = r.other
                    """, binds: try Self.binds(connector, Self.json(removals))),
                logger: logger)
        }
        if !kept.isEmpty {
            try await connection.query(
                PostgresQuery(unsafeSQL: """
                    INSERT INTO crm.deal_contacts (connector, deal_external_id, contact_external_id)
                    SELECT $1, r.deal_external_id, r.other FROM json_to_recordset($2::json) AS r(deal_external_id text, other text)
                    ON CONFLICT DO NOTHING
                    """, binds: try Self.binds(connector, Self.json(Array(kept.values)))),
                logger: logger)
        }
    }

    /// CRM campaigns, keyed by their name (the key touches and imported costs use), with the CRM's
    /// actual cost as a cost row of source `crm` for the month the campaign started. A campaign
    /// renamed in the CRM gives up its old key (and the old key's CRM cost) to the new name.
    func writeCampaigns(
        _ campaigns: [CRMCampaign], outcome: inout Outcome, on connection: PostgresConnection, logger: Logger
    ) async throws {
        // One version per CRM id and per name: one statement cannot update a row twice.
        let newest = Self.newest(Self.newest(campaigns, id: \.externalID, stamp: \.modifiedAt), id: \.name, stamp: \.modifiedAt)
        let rows = newest.map(CampaignRow.init)
        let json = try Self.json(rows)
        let columns = """
            r(campaign text, external_id text, actual_cost numeric, budgeted_cost numeric, currency text,
              period text, modified_at timestamptz, deleted boolean)
            """
        try await connection.query(
            PostgresQuery(unsafeSQL: """
                WITH gone AS (
                    UPDATE crm.campaigns k SET external_id = NULL
                      FROM json_to_recordset($2::json) AS \(columns)
                     WHERE k.connector = $1 AND k.external_id = r.external_id AND k.campaign <> r.campaign
                       AND (k.modified_at IS NULL OR k.modified_at <= r.modified_at)
                    RETURNING k.workspace, k.campaign)
                DELETE FROM crm.campaign_costs c USING gone
                 WHERE c.workspace = gone.workspace AND c.campaign = gone.campaign AND c.source = 'crm'
                """, binds: try Self.binds(connector, json)),
            logger: logger)
        var applied: [String] = []
        for try await campaign in try await connection.query(
            PostgresQuery(unsafeSQL: """
                INSERT INTO crm.campaigns (campaign, name, connector, external_id, actual_cost, budgeted_cost, currency, modified_at, deleted)
                SELECT r.campaign, r.campaign, $1, r.external_id, r.actual_cost, r.budgeted_cost, upper(r.currency), r.modified_at, r.deleted
                  FROM json_to_recordset($2::json) AS \(columns)
                 -- an older version under a name the campaign no longer has
                 WHERE NOT EXISTS (SELECT 1 FROM crm.campaigns k
                                    WHERE k.connector = $1 AND k.external_id = r.external_id AND k.campaign <> r.campaign)
                -- the workspace key comes from the connector (crm.stamp_workspace), before arbitration
                ON CONFLICT (workspace, campaign) DO UPDATE
                   SET name = EXCLUDED.name, connector = EXCLUDED.connector, external_id = EXCLUDED.external_id,
                       actual_cost = EXCLUDED.actual_cost, budgeted_cost = EXCLUDED.budgeted_cost,
                       currency = EXCLUDED.currency, modified_at = EXCLUDED.modified_at, deleted = EXCLUDED.deleted
                 WHERE crm.campaigns.modified_at IS NULL OR crm.campaigns.modified_at <= EXCLUDED.modified_at
                RETURNING campaign
                """, binds: try Self.binds(connector, json)),
            logger: logger
        ).decode(String.self) {
            applied.append(campaign)
        }
        outcome.written += applied.count
        outcome.stale += rows.count - applied.count
        guard !applied.isEmpty else { return }
        // The CRM's cost replaces what the CRM said before (the start month may have moved).
        try await connection.query(
            """
            DELETE FROM crm.campaign_costs
             WHERE source = 'crm' AND campaign = ANY(\(applied))
               AND workspace = (SELECT workspace FROM crm.connectors WHERE name = \(connector))
            """, logger: logger)
        var binds = PostgresBindings()
        binds.append(connector)
        binds.append(json)
        binds.append(applied)
        try await connection.query(
            PostgresQuery(unsafeSQL: """
                INSERT INTO crm.campaign_costs (workspace, campaign, category, amount, currency, period, source)
                SELECT coalesce((SELECT workspace FROM crm.connectors WHERE name = $1), 'default'),
                       r.campaign, 'actual_cost', r.actual_cost, upper(r.currency), r.period, 'crm'
                  FROM json_to_recordset($2::json) AS \(columns)
                 WHERE r.campaign = ANY($3) AND NOT r.deleted AND r.actual_cost >= 0
                   AND r.currency IS NOT NULL AND r.period IS NOT NULL
                """, binds: binds),
            logger: logger)
    }

    /// Campaign memberships are marketing touches from the CRM's side: touch `sf:<CampaignMember Id>`
    /// (only Salesforce has them), kind `campaign.member`, at the time the member was added, under
    /// the campaign's key. A deleted membership takes its touch away.
    func writeCampaignMembers(
        _ members: [CRMCampaignMember], outcome: inout Outcome, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let rows = Self.newest(members, id: \.externalID, stamp: \.modifiedAt).map(MemberRow.init)
        let gone = rows.filter(\.deleted).map(\.touch_key)
        if !gone.isEmpty {
            try await connection.query("DELETE FROM crm.touches WHERE touch_key = ANY(\(gone))", logger: logger)
        }
        let present = rows.filter { !$0.deleted }
        guard !present.isEmpty else { return }
        let written = try await connection.query(
            PostgresQuery(unsafeSQL: """
                INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at, source)
                SELECT r.touch_key, $1, r.contact_external_id, k.campaign, 'campaign.member', r.occurred_at, 'crm'
                  FROM json_to_recordset($2::json)
                    AS r(touch_key text, campaign_external_id text, contact_external_id text, occurred_at timestamptz, deleted boolean)
                  LEFT JOIN crm.campaigns k ON k.connector = $1 AND k.external_id = r.campaign_external_id
                ON CONFLICT (touch_key) DO UPDATE
                   SET contact_external_id = EXCLUDED.contact_external_id,
                       campaign = coalesce(EXCLUDED.campaign, crm.touches.campaign), occurred_at = EXCLUDED.occurred_at
                RETURNING 1
                """, binds: try Self.binds(connector, Self.json(present))),
            logger: logger
        ).collect()
        outcome.written += written.count
    }
}

struct CampaignRow: Encodable {
    var campaign: String, external_id: String, actual_cost: String?, budgeted_cost: String?, currency: String?
    var period: String?, modified_at: Date, deleted: Bool
    init(_ c: CRMCampaign) {
        campaign = c.name; external_id = c.externalID; actual_cost = decimalText(c.actualCost)
        budgeted_cost = decimalText(c.budgetedCost); currency = c.currency
        // YYYY-MM of the start date, in UTC like every stamp here.
        period = c.startDate.map { String(CRMTimestamp.iso($0).prefix(7)) }
        modified_at = c.modifiedAt; deleted = c.deleted
    }
}

struct MemberRow: Encodable {
    var touch_key: String, campaign_external_id: String, contact_external_id: String, occurred_at: Date, deleted: Bool
    init(_ m: CRMCampaignMember) {
        touch_key = "sf:\(m.externalID)"; campaign_external_id = m.campaignID; contact_external_id = m.contactID
        occurred_at = m.joinedAt; deleted = m.deleted
    }
}

/// Money travels as decimal text so no binary floating point touches it.
private func decimalText(_ decimal: Decimal?) -> String? {
    decimal.map { NSDecimalNumber(decimal: $0).description(withLocale: Locale(identifier: "en_US_POSIX")) }
}
