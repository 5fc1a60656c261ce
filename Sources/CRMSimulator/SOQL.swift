import CRMSyncCore
import Foundation

/// Why the simulator refuses a SOQL query, with Salesforce's error code.
enum SOQLError: Error, Equatable {
    case malformed(String)
    case invalidType(String)
    case invalidField(String)

    var errorCode: String {
        switch self {
        case .malformed: "MALFORMED_QUERY"
        case .invalidType: "INVALID_TYPE"
        case .invalidField: "INVALID_FIELD"
        }
    }

    var message: String {
        switch self {
        case .malformed(let text), .invalidType(let text), .invalidField(let text): text
        }
    }
}

/// A literal in a SOQL condition. Date-times carry epoch milliseconds.
enum SOQLLiteral: Sendable, Equatable {
    case string(String)
    case number(Decimal)
    case bool(Bool)
    case null
    case dateTime(Int64)
    case date(Int64)
}

indirect enum SOQLCondition: Sendable, Equatable {
    enum Operator: String, Sendable { case eq = "=", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">=" }
    case and(SOQLCondition, SOQLCondition)
    case or(SOQLCondition, SOQLCondition)
    case not(SOQLCondition)
    case compare(field: String, op: Operator, value: SOQLLiteral)
    case within(field: String, values: [SOQLLiteral], negated: Bool)
}

/// The subset of SOQL the simulator answers, which is what the connector and the Python client send:
/// `SELECT f, ... FROM Object [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...] [LIMIT n]`,
/// with conditions built from comparisons, `IN`, `AND`, `OR`, `NOT` and parentheses. Field and object
/// names are resolved against the org's schema, case-insensitively, as Salesforce does.
struct SOQLQuery: Sendable, Equatable {
    struct Order: Sendable, Equatable { var field: String; var descending: Bool; var nullsLast: Bool }
    var fields: [String]
    var object: String
    var condition: SOQLCondition?
    var order: [Order]
    var limit: Int?

    init(parsing text: String) throws(SOQLError) {
        var parser = SOQLParser(tokens: try SOQLParser.tokenize(text))
        self = try parser.query()
    }

    init(fields: [String], object: String, condition: SOQLCondition?, order: [Order], limit: Int?) {
        self.fields = fields
        self.object = object
        self.condition = condition
        self.order = order
        self.limit = limit
    }

    /// Rows that match, in the requested order (ties, and queries without ORDER BY, by Id).
    func run(over rows: [SObjectRow]) throws(SOQLError) -> [SObjectRow] {
        var matching: [SObjectRow] = []
        for row in rows {
            if let condition, try !Self.evaluate(condition, on: row) { continue }
            matching.append(row)
        }
        matching.sort { lhs, rhs in
            for key in order {
                let l = lhs[key.field], r = rhs[key.field]
                if l == r { continue }
                if l == .null || r == .null { return (l == .null) != key.nullsLast }
                guard let ascending = Self.less(l, r) else { continue }
                return ascending != key.descending
            }
            return lhs.id < rhs.id
        }
        if let limit { matching = Array(matching.prefix(limit)) }
        return matching
    }

    static func evaluate(_ condition: SOQLCondition, on row: SObjectRow) throws(SOQLError) -> Bool {
        switch condition {
        // Typed throws do not pass through the autoclosures of && and ||.
        case .and(let l, let r):
            guard try evaluate(l, on: row) else { return false }
            return try evaluate(r, on: row)
        case .or(let l, let r):
            if try evaluate(l, on: row) { return true }
            return try evaluate(r, on: row)
        case .not(let c): return try !evaluate(c, on: row)
        case .within(let field, let values, let negated):
            var found = false
            for value in values {
                if try compare(row[field], value, field: field) == .orderedSame { found = true }
            }
            return found != negated
        case .compare(let field, let op, let value):
            let actual = row[field]
            if value == .null || actual == .null {
                let bothNull = value == .null && actual == .null
                switch op {
                case .eq: return bothNull
                case .ne: return !bothNull
                default: return false
                }
            }
            guard let order = try compare(actual, value, field: field) else { return false }
            switch op {
            case .eq: return order == .orderedSame
            case .ne: return order != .orderedSame
            case .lt: return order == .orderedAscending
            case .le: return order != .orderedDescending
            case .gt: return order == .orderedDescending
            case .ge: return order != .orderedAscending
            }
        }
    }

    /// Salesforce compares date-times to the second (it ignores milliseconds) and strings without
    /// regard to case. A literal of the wrong type is the caller's mistake: INVALID_FIELD.
    static func compare(_ actual: SFValue, _ literal: SOQLLiteral, field: String) throws(SOQLError) -> ComparisonResult? {
        func order<T: Comparable>(_ a: T, _ b: T) -> ComparisonResult { a < b ? .orderedAscending : a > b ? .orderedDescending : .orderedSame }
        func seconds(_ ms: Int64) -> Int64 { ms >= 0 ? ms / 1000 : (ms - 999) / 1000 }
        switch (actual, literal) {
        case (.null, _), (_, .null): return nil
        case (.dateTime(let a), .dateTime(let b)): return order(seconds(a), seconds(b))
        case (.date(let a), .date(let b)): return order(a, b)
        case (.string(let a), .string(let b)): return order(a.lowercased(), b.lowercased())
        case (.number(let a), .number(let b)): return order(a, b)
        case (.bool(let a), .bool(let b)): return a == b ? .orderedSame : .orderedAscending
        case (.dateTime, _):
            throw .invalidField("value of filter criterion for field '\(field)' must be of type dateTime and should not be enclosed in quotes")
        case (.date, _):
            throw .invalidField("value of filter criterion for field '\(field)' must be of type date and should not be enclosed in quotes")
        default:
            throw .invalidField("value of filter criterion for field '\(field)' is not of the field's type")
        }
    }

    static func less(_ a: SFValue, _ b: SFValue) -> Bool? {
        switch (a, b) {
        case (.dateTime(let x), .dateTime(let y)), (.date(let x), .date(let y)): x < y
        case (.string(let x), .string(let y)): x.lowercased() < y.lowercased()
        case (.number(let x), .number(let y)): x < y
        case (.bool(let x), .bool(let y)): !x && y
        default: nil
        }
    }
}

/// A recursive-descent parser over SOQL tokens.
struct SOQLParser {
    enum Token: Equatable {
        case word(String)      // keywords, field and object names (dotted paths included)
        case literal(String)   // numbers, dates and date-times, unquoted as SOQL writes them
        case string(String)    // 'quoted', escapes resolved
        case symbol(String)    // ( ) , = != <> < <= > >=
    }

    var tokens: [Token]
    var position = 0

    static func tokenize(_ text: String) throws(SOQLError) -> [Token] {
        var tokens: [Token] = []
        let characters = Array(text)
        var index = 0
        func isWordCharacter(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." }
        while index < characters.count {
            let c = characters[index]
            if c.isWhitespace {
                index += 1
            } else if c == "'" {
                var value = ""
                index += 1
                var closed = false
                while index < characters.count {
                    let d = characters[index]
                    if d == "\\", index + 1 < characters.count {
                        let escaped = characters[index + 1]
                        value.append(["n": "\n", "t": "\t", "r": "\r"][escaped] ?? escaped)
                        index += 2
                    } else if d == "'" {
                        closed = true
                        index += 1
                        break
                    } else {
                        value.append(d)
                        index += 1
                    }
                }
                guard closed else { throw .malformed("unterminated string literal") }
                tokens.append(.string(value))
            } else if c.isNumber || (c == "-" && index + 1 < characters.count && characters[index + 1].isNumber) {
                var value = String(c)
                index += 1
                while index < characters.count,
                      characters[index].isLetter || characters[index].isNumber || ":.+-".contains(characters[index]) {
                    value.append(characters[index])
                    index += 1
                }
                tokens.append(.literal(value))
            } else if c.isLetter || c == "_" {
                var value = ""
                while index < characters.count, isWordCharacter(characters[index]) {
                    value.append(characters[index])
                    index += 1
                }
                tokens.append(.word(value))
            } else if "(),".contains(c) {
                tokens.append(.symbol(String(c)))
                index += 1
            } else if "=<>!".contains(c) {
                var value = String(c)
                if index + 1 < characters.count, "=>".contains(characters[index + 1]), c != "=" {
                    value.append(characters[index + 1])
                }
                index += value.count
                guard ["=", "!=", "<>", "<", "<=", ">", ">="].contains(value) else { throw .malformed("unexpected token '\(value)'") }
                tokens.append(.symbol(value == "<>" ? "!=" : value))
            } else {
                throw .malformed("unexpected character '\(c)'")
            }
        }
        return tokens
    }

    // MARK: Grammar

    mutating func query() throws(SOQLError) -> SOQLQuery {
        try expect(keyword: "SELECT")
        var names: [String] = []
        repeat {
            guard case .word(let name)? = next(), !Self.keywords.contains(name.uppercased()) else {
                throw .malformed("expected a field name after SELECT")
            }
            if peek() == .symbol("(") { throw .malformed("functions such as \(name)() are not supported") }
            names.append(name)
        } while accept(.symbol(","))
        try expect(keyword: "FROM")
        guard case .word(let objectName)? = next() else { throw .malformed("expected an object name after FROM") }
        guard let object = SalesforceOrg.object(named: objectName) else {
            throw .invalidType("sObject type '\(objectName)' is not supported.")
        }
        var fields: [String] = []
        for name in names { fields.append(try Self.field(name, on: object)) }
        var condition: SOQLCondition?
        if accept(keyword: "WHERE") { condition = try disjunction(object) }
        var order: [SOQLQuery.Order] = []
        if accept(keyword: "ORDER") {
            try expect(keyword: "BY")
            repeat {
                guard case .word(let name)? = next() else { throw .malformed("expected a field name in ORDER BY") }
                var item = SOQLQuery.Order(field: try Self.field(name, on: object), descending: false, nullsLast: false)
                if accept(keyword: "DESC") { item.descending = true; item.nullsLast = true } else { _ = accept(keyword: "ASC") }
                if accept(keyword: "NULLS") {
                    if accept(keyword: "LAST") { item.nullsLast = true } else { try expect(keyword: "FIRST"); item.nullsLast = false }
                }
                order.append(item)
            } while accept(.symbol(","))
        }
        var limit: Int?
        if accept(keyword: "LIMIT") {
            guard case .literal(let text)? = next(), let value = Int(text), value >= 0 else { throw .malformed("LIMIT takes a whole number") }
            limit = value
        }
        if let extra = peek() { throw .malformed("unexpected token \(Self.describe(extra)) at the end of the query") }
        return SOQLQuery(fields: fields, object: object, condition: condition, order: order, limit: limit)
    }

    mutating func disjunction(_ object: String) throws(SOQLError) -> SOQLCondition {
        var result = try conjunction(object)
        while accept(keyword: "OR") { result = .or(result, try conjunction(object)) }
        return result
    }

    mutating func conjunction(_ object: String) throws(SOQLError) -> SOQLCondition {
        var result = try unary(object)
        while accept(keyword: "AND") { result = .and(result, try unary(object)) }
        return result
    }

    mutating func unary(_ object: String) throws(SOQLError) -> SOQLCondition {
        if accept(keyword: "NOT") { return .not(try unary(object)) }
        if accept(.symbol("(")) {
            let inner = try disjunction(object)
            try expect(.symbol(")"))
            return inner
        }
        guard case .word(let name)? = next(), !Self.keywords.contains(name.uppercased()) else {
            throw .malformed("expected a condition")
        }
        let field = try Self.field(name, on: object)
        if accept(keyword: "NOT") {
            try expect(keyword: "IN")
            return .within(field: field, values: try list(), negated: true)
        }
        if accept(keyword: "IN") { return .within(field: field, values: try list(), negated: false) }
        guard case .symbol(let symbol)? = next(), let op = SOQLCondition.Operator(rawValue: symbol) else {
            throw .malformed("expected a comparison after \(field)")
        }
        return .compare(field: field, op: op, value: try literal())
    }

    mutating func list() throws(SOQLError) -> [SOQLLiteral] {
        try expect(.symbol("("))
        var values: [SOQLLiteral] = []
        repeat { values.append(try literal()) } while accept(.symbol(","))
        try expect(.symbol(")"))
        return values
    }

    mutating func literal() throws(SOQLError) -> SOQLLiteral {
        switch next() {
        case .string(let text)?: return .string(text)
        case .word(let word)? where word.uppercased() == "TRUE": return .bool(true)
        case .word(let word)? where word.uppercased() == "FALSE": return .bool(false)
        case .word(let word)? where word.uppercased() == "NULL": return .null
        case .literal(let text)?:
            if text.count == 10, text.dropFirst(4).first == "-", let date = CRMTimestamp.parse(text) {
                return .date(CRMTimestamp.millis(date))
            }
            if text.contains("T") {
                guard let date = CRMTimestamp.parse(text), text.contains(":") else { throw .malformed("cannot read the date-time '\(text)'") }
                return .dateTime(CRMTimestamp.millis(date))
            }
            guard let number = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
                throw .malformed("cannot read the value '\(text)'")
            }
            return .number(number)
        case let token?: throw .malformed("unexpected \(Self.describe(token)) where a value was expected")
        case nil: throw .malformed("the query ends where a value was expected")
        }
    }

    // MARK: Tokens

    static let keywords: Set<String> = ["SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "ASC", "DESC", "NULLS", "FIRST", "LAST", "LIMIT"]

    static func field(_ name: String, on object: String) throws(SOQLError) -> String {
        guard let field = SalesforceOrg.field(name, on: object) else {
            throw .invalidField("No such column '\(name)' on entity '\(object)'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.")
        }
        return field
    }

    static func describe(_ token: Token) -> String {
        switch token {
        case .word(let text), .literal(let text), .symbol(let text): "'\(text)'"
        case .string(let text): "'\\'\(text)\\''"
        }
    }

    func peek() -> Token? { position < tokens.count ? tokens[position] : nil }

    mutating func next() -> Token? {
        defer { position += 1 }
        return peek()
    }

    mutating func accept(_ token: Token) -> Bool {
        guard peek() == token else { return false }
        position += 1
        return true
    }

    mutating func accept(keyword: String) -> Bool {
        guard case .word(let word)? = peek(), word.uppercased() == keyword else { return false }
        position += 1
        return true
    }

    mutating func expect(_ token: Token) throws(SOQLError) {
        guard accept(token) else { throw .malformed("expected \(Self.describe(token))") }
    }

    mutating func expect(keyword: String) throws(SOQLError) {
        guard accept(keyword: keyword) else { throw .malformed("expected \(keyword)") }
    }
}
