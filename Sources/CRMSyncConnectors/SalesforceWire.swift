import CRMSyncCore
import Foundation

/// Salesforce REST JSON as the connector reads it: query pages, records, `deleted/` answers and
/// error arrays.
enum SalesforceWire {
    struct QueryResponse: Decodable {
        var totalSize: Int?
        var done: Bool
        /// A path (`/services/data/v59.0/query/01g…-2000`), present until the last page.
        var nextRecordsUrl: String?
        var records: [Record]
    }

    /// A field value; nested relationship objects and `attributes` are not read.
    enum Field: Decodable, Equatable {
        case null
        case string(String)
        case number(Decimal)
        case bool(Bool)
        case nested

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if container.decodeNil() {
                self = .null
            } else if let text = try? container.decode(String.self) {
                self = .string(text)
            } else if let flag = try? container.decode(Bool.self) {
                self = .bool(flag)
            } else if let number = try? container.decode(Decimal.self) {
                // Decoded from the JSON text, so money stays exact.
                self = .number(number)
            } else {
                self = .nested
            }
        }
    }

    struct Record: Decodable {
        var fields: [String: Field]

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Key.self)
            var fields: [String: Field] = [:]
            for key in container.allKeys where key.stringValue != "attributes" {
                fields[key.stringValue] = try container.decode(Field.self, forKey: key)
            }
            self.fields = fields
        }

        init(fields: [String: Field]) { self.fields = fields }

        var id: String { string("Id") ?? "" }

        func string(_ name: String) -> String? {
            if case .string(let text)? = fields[name], !text.isEmpty { return text }
            return nil
        }

        func decimal(_ name: String) -> Decimal? {
            switch fields[name] {
            case .number(let value)?: value
            case .string(let text)?: Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
            default: nil
            }
        }

        func bool(_ name: String) -> Bool {
            if case .bool(let flag)? = fields[name] { return flag }
            return false
        }

        /// Date-times (`2026-11-02T01:23:45.000+0000`) and dates (`2026-11-30`, midnight UTC).
        func date(_ name: String) -> Date? { string(name).flatMap(CRMTimestamp.parse) }
    }

    struct DeletedResponse: Decodable {
        struct Entry: Decodable { var id: String; var deletedDate: String }
        var deletedRecords: [Entry]
        var earliestDateAvailable: String?
        var latestDateCovered: String?
    }

    /// Every Salesforce error body is an array of these.
    struct ErrorBody: Decodable {
        var errorCode: String?
        var message: String?
    }
}
