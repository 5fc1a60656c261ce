import Foundation

/// One line of a programme-cost CSV.
public struct CostLine: Sendable, Equatable, Encodable {
    public var campaign: String
    public var category: String
    public var amount: Decimal
    public var currency: String
    public var period: String

    public init(campaign: String, category: String, amount: Decimal, currency: String, period: String) {
        self.campaign = campaign
        self.category = category
        self.amount = amount
        self.currency = currency
        self.period = period
    }
}

/// Parses `campaign,category,amount,currency,period` with a header row. Any bad row rejects the
/// whole file, naming its line.
public enum CostCSV {
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var line: Int
        public var problem: String
        public var description: String { "line \(line): \(problem)" }

        public init(line: Int, problem: String) {
            self.line = line
            self.problem = problem
        }
    }

    static let header = ["campaign", "category", "amount", "currency", "period"]

    public static func parse(_ text: String) throws(ParseError) -> [CostLine] {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).map(String.init)
        while lines.last?.trimmingCharacters(in: .whitespaces).isEmpty == true { lines.removeLast() }
        guard let first = lines.first else { throw ParseError(line: 1, problem: "the file is empty") }
        let columns = first.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard columns == header else {
            throw ParseError(line: 1, problem: "expected the header \(header.joined(separator: ","))")
        }
        var result: [CostLine] = []
        var seen: Set<String> = []
        for (index, raw) in lines.enumerated().dropFirst() {
            let number = index + 1
            if raw.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            let fields = raw.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard fields.count == 5 else { throw ParseError(line: number, problem: "expected 5 fields, found \(fields.count)") }
            guard !fields[0].isEmpty else { throw ParseError(line: number, problem: "campaign is empty") }
            guard !fields[1].isEmpty else { throw ParseError(line: number, problem: "category is empty") }
            guard fields[2].range(of: #"^[0-9]+(\.[0-9]+)?$"#, options: .regularExpression) != nil,
                  let amount = Decimal(string: fields[2], locale: Locale(identifier: "en_US_POSIX")) else {
                throw ParseError(line: number, problem: "amount '\(fields[2])' is not a non-negative decimal number")
            }
            guard fields[3].range(of: #"^[A-Za-z]{3}$"#, options: .regularExpression) != nil else {
                throw ParseError(line: number, problem: "currency '\(fields[3])' is not a 3-letter ISO 4217 code")
            }
            guard fields[4].range(of: #"^[0-9]{4}-(0[1-9]|1[0-2])$"#, options: .regularExpression) != nil else {
                throw ParseError(line: number, problem: "period '\(fields[4])' is not YYYY-MM")
            }
            let key = [fields[0], fields[1], fields[3].uppercased(), fields[4]].joined(separator: "\u{1F}")
            guard seen.insert(key).inserted else {
                throw ParseError(line: number, problem: "repeats campaign, category, currency and period of an earlier line")
            }
            result.append(CostLine(campaign: fields[0], category: fields[1], amount: amount, currency: fields[3].uppercased(), period: fields[4]))
        }
        return result
    }
}
