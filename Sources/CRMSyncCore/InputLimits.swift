/// Sizes that outside input must respect before it reaches PostgreSQL.
///
/// A btree index row holds at most 2,704 bytes, so an id or e-mail longer than that makes the
/// insert fail for good; a sender told to retry would retry it for days. Limits are in UTF-8
/// bytes, not characters: 200 visible characters with combining marks can be 60 KB.
public enum InputLimits {
    /// Ids (event ids, CRM record ids, delivery ids) and other indexed keys.
    public static let identifierBytes = 255
    /// An e-mail address (RFC 5321 caps the path at 256 octets).
    public static let emailBytes = 320
    /// Stage, pipeline and type names.
    public static let nameBytes = 255

    /// True when `text` is non-empty and at most `limit` UTF-8 bytes.
    public static func fits(_ text: String, _ limit: Int = identifierBytes) -> Bool {
        !text.isEmpty && text.utf8.count <= limit
    }
}
