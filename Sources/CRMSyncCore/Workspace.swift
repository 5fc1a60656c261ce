/// A business unit's name. Connectors, costs and events are placed in one; every stored row and
/// reporting view carries it.
public enum Workspace {
    public static let defaultName = "default"

    /// Lower-case letters, digits, '-' and '_', starting with a letter or digit, at most 63
    /// characters: the rule `crm.workspaces` enforces, so a name that passes here is stored.
    public static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 63 else { return false }
        func alphanumeric(_ c: Unicode.Scalar) -> Bool { ("a"..."z").contains(c) || ("0"..."9").contains(c) }
        return alphanumeric(first) && name.unicodeScalars.allSatisfy { alphanumeric($0) || $0 == "-" || $0 == "_" }
    }

    public static let rule = "lower-case letters, digits, '-' and '_', at most 63"
}
