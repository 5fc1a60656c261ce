import Foundation

/// Pipedrive's JSON as it arrives: the `{success, data, additional_data}` envelope, v2 objects,
/// v1 users and the v1 deal flow. Ids, numbers and booleans come in more than one spelling
/// (v1 nests ids as `{"value": 5}`, webhooks send ids as strings, v1 booleans are 0/1), so the
/// fields that vary are decoded leniently.
enum PipedriveWire {
    struct Envelope<T: Decodable>: Decodable {
        var success: Bool?
        var data: T?
        var error: String?
        var additionalData: AdditionalData?

        enum CodingKeys: String, CodingKey {
            case success, data, error
            case additionalData = "additional_data"
        }
    }

    /// v2 pages carry `next_cursor`; v1 pages `pagination`. Some v1 endpoints send `[]` instead
    /// of an object, which means "nothing more".
    struct AdditionalData: Decodable {
        struct Pagination: Decodable {
            var start: Int?
            var limit: Int?
            var moreItemsInCollection: Bool?
            var nextStart: Int?
            enum CodingKeys: String, CodingKey {
                case start, limit
                case moreItemsInCollection = "more_items_in_collection"
                case nextStart = "next_start"
            }
        }
        var nextCursor: String?
        var pagination: Pagination?

        enum CodingKeys: String, CodingKey {
            case nextCursor = "next_cursor"
            case pagination
        }

        init(from decoder: any Decoder) throws {
            guard let container = try? decoder.container(keyedBy: CodingKeys.self) else { return }
            nextCursor = try container.decodeIfPresent(String.self, forKey: .nextCursor)
            pagination = try? container.decodeIfPresent(Pagination.self, forKey: .pagination)
        }
    }

    struct ErrorBody: Decodable {
        var success: Bool?
        var error: String?
        var errorCode: Int?
        var code: String?
    }

    /// An id as a number, a string, or v1's `{"value": 5, "name": ...}`.
    struct ID: Decodable, Sendable {
        var value: String
        enum Keys: String, CodingKey { case value }
        init(from decoder: any Decoder) throws {
            if let container = try? decoder.singleValueContainer() {
                if let number = try? container.decode(Int64.self) { value = String(number); return }
                if let text = try? container.decode(String.self) { value = text; return }
            }
            let keyed = try decoder.container(keyedBy: Keys.self)
            value = try keyed.decode(ID.self, forKey: .value).value
        }
    }

    /// A JSON number or numeric string, kept exact as `Decimal`; anything else decodes as nil.
    struct Number: Decodable, Sendable {
        var value: Decimal?
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) {
                value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
            } else if let number = try? container.decode(Decimal.self) {
                value = number
            } else {
                value = nil
            }
        }
    }

    /// A string, number or boolean rendered as text (flow `old_value` / `new_value`).
    struct Text: Decodable, Sendable {
        var value: String?
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() { value = nil }
            else if let text = try? container.decode(String.self) { value = text }
            else if let number = try? container.decode(Int64.self) { value = String(number) }
            else if let number = try? container.decode(Double.self) { value = String(number) }
            else if let flag = try? container.decode(Bool.self) { value = String(flag) }
            else { value = nil }
        }
    }

    /// `true`/`false` or v1's `1`/`0`.
    struct Flag: Decodable, Sendable {
        var value: Bool
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let flag = try? container.decode(Bool.self) { value = flag }
            else if let number = try? container.decode(Int.self) { value = number != 0 }
            else { value = ((try? container.decode(String.self)) ?? "") == "1" }
        }
    }

    struct Deal: Decodable, Sendable {
        var id: Int64
        var title: String?
        var owner_id: ID?
        var value: Number?
        var currency: String?
        var person_id: ID?
        var org_id: ID?
        var pipeline_id: ID?
        var stage_id: ID?
        var status: String?
        var add_time: String?
        var update_time: String?
        var stage_change_time: String?
        var close_time: String?
        var won_time: String?
        var lost_time: String?
        var is_deleted: Flag?
        var custom_fields: [String: Number]?

        enum CodingKeys: String, CodingKey {
            case id, title, owner_id, value, currency, person_id, org_id, pipeline_id, stage_id, status, add_time,
                 update_time, stage_change_time, close_time, won_time, lost_time, is_deleted, custom_fields
            // v1 spellings.
            case user_id, deleted
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            id = try c.decode(Int64.self, forKey: .id)
            title = try? c.decodeIfPresent(String.self, forKey: .title)
            owner_id = (try? c.decodeIfPresent(ID.self, forKey: .owner_id)) ?? (try? c.decodeIfPresent(ID.self, forKey: .user_id))
            value = try? c.decodeIfPresent(Number.self, forKey: .value)
            currency = try? c.decodeIfPresent(String.self, forKey: .currency)
            person_id = try? c.decodeIfPresent(ID.self, forKey: .person_id)
            org_id = try? c.decodeIfPresent(ID.self, forKey: .org_id)
            pipeline_id = try? c.decodeIfPresent(ID.self, forKey: .pipeline_id)
            stage_id = try? c.decodeIfPresent(ID.self, forKey: .stage_id)
            status = try? c.decodeIfPresent(String.self, forKey: .status)
            add_time = try? c.decodeIfPresent(String.self, forKey: .add_time)
            update_time = try? c.decodeIfPresent(String.self, forKey: .update_time)
            stage_change_time = try? c.decodeIfPresent(String.self, forKey: .stage_change_time)
            close_time = try? c.decodeIfPresent(String.self, forKey: .close_time)
            won_time = try? c.decodeIfPresent(String.self, forKey: .won_time)
            lost_time = try? c.decodeIfPresent(String.self, forKey: .lost_time)
            is_deleted = (try? c.decodeIfPresent(Flag.self, forKey: .is_deleted)) ?? (try? c.decodeIfPresent(Flag.self, forKey: .deleted))
            // Custom fields hold any JSON; only numeric ones matter here (a gross-margin field).
            custom_fields = try? c.decodeIfPresent([String: Number].self, forKey: .custom_fields)
        }
    }

    struct Person: Decodable, Sendable {
        struct Email: Decodable, Sendable { var value: String?; var primary: Flag? }
        var id: Int64
        var name: String?
        var owner_id: ID?
        var org_id: ID?
        var update_time: String?
        var emails: [Email]?
        var is_deleted: Flag?
    }

    struct Organization: Decodable, Sendable {
        var id: Int64
        var name: String?
        var owner_id: ID?
        var update_time: String?
        var is_deleted: Flag?
    }

    struct Activity: Decodable, Sendable {
        struct Participant: Decodable, Sendable { var person_id: ID? }
        var id: Int64
        var subject: String?
        var type: String?
        var owner_id: ID?
        var deal_id: ID?
        var person_id: ID?
        var due_date: String?
        var due_time: String?
        var add_time: String?
        var update_time: String?
        var is_deleted: Flag?
        var participants: [Participant]?
    }

    struct User: Decodable, Sendable {
        var id: Int64
        var name: String?
        var email: String?
        var modified: String?
        var created: String?
        var active_flag: Flag?
    }

    struct Stage: Decodable, Sendable {
        var id: Int64
        var name: String?
        var pipeline_id: ID?
        var order_nr: Int?
        var is_deleted: Flag?
    }

    struct FlowEntry: Decodable, Sendable {
        struct Change: Decodable, Sendable {
            var id: Int64?
            var field_key: String?
            var old_value: Text?
            var new_value: Text?
            var log_time: String?
        }
        var object: String?
        var timestamp: String?
        var data: Change?

        enum CodingKeys: String, CodingKey { case object, timestamp, data }
        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            object = try? c.decodeIfPresent(String.self, forKey: .object)
            timestamp = try? c.decodeIfPresent(String.self, forKey: .timestamp)
            // Only `dealChange` rows are read; notes, activities and files have other shapes.
            data = object == "dealChange" ? try? c.decodeIfPresent(Change.self, forKey: .data) : nil
        }
    }

    struct CreatedActivity: Decodable, Sendable {
        var id: Int64
    }
}
