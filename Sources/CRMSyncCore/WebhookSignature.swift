import Crypto
import Foundation

/// Why a signed request was refused. The messages name the problem, never the secret or the body.
public enum SignatureError: Error, Equatable, CustomStringConvertible {
    case missingHeader(String)
    case malformedHeader(String)
    case staleTimestamp
    case mismatch
    case badSecret

    public var description: String {
        switch self {
        case .missingHeader(let name): "missing header \(name)"
        case .malformedHeader(let name): "malformed header \(name)"
        case .staleTimestamp: "timestamp outside the tolerance"
        case .mismatch: "signature does not match"
        case .badSecret: "the configured secret is not valid"
        }
    }
}

/// Compares two byte strings in time that depends only on their lengths, so a forger learns nothing
/// from how long a rejection took.
public func constantTimeEquals<A: Collection<UInt8>, B: Collection<UInt8>>(_ a: A, _ b: B) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for (x, y) in zip(a, b) { difference |= x ^ y }
    return difference == 0
}

/// Standard Webhooks (https://www.standardwebhooks.com): `v1,` + base64 HMAC-SHA256 over
/// `id.timestamp.body`, keyed with the base64 part of a `whsec_` secret.
public struct StandardWebhookSigner: Sendable {
    public static let tolerance: Duration = .seconds(300)
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public init(secret: String) throws(SignatureError) {
        let encoded = secret.hasPrefix("whsec_") ? String(secret.dropFirst(6)) : secret
        guard let bytes = Data(base64Encoded: encoded), !bytes.isEmpty else { throw .badSecret }
        keyBytes = Array(bytes)
    }

    public func signature(id: String, timestamp: Int64, body: some DataProtocol) -> String {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Data("\(id).\(timestamp).".utf8))
        mac.update(data: body)
        return "v1," + Data(mac.finalize()).base64EncodedString()
    }

    /// Verifies the three headers against the raw body. Any of several space-separated signatures may match.
    public func verify(
        id: String?, timestamp: String?, signatures: String?, body: some DataProtocol, now: Date
    ) throws(SignatureError) {
        guard let id, !id.isEmpty else { throw .missingHeader("webhook-id") }
        guard let timestamp else { throw .missingHeader("webhook-timestamp") }
        guard let signatures else { throw .missingHeader("webhook-signature") }
        guard let seconds = Int64(timestamp) else { throw .malformedHeader("webhook-timestamp") }
        let tolerance = Double(Self.tolerance.components.seconds)
        guard abs(now.timeIntervalSince1970 - Double(seconds)) <= tolerance else { throw .staleTimestamp }
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Data("\(id).\(timestamp).".utf8))
        mac.update(data: body)
        let expected = Array(mac.finalize())
        var sawV1 = false
        for candidate in signatures.split(separator: " ") {
            guard candidate.hasPrefix("v1,") else { continue }
            sawV1 = true
            guard let given = Data(base64Encoded: String(candidate.dropFirst(3))) else { continue }
            if constantTimeEquals(Array(given), expected) { return }
        }
        throw sawV1 ? .mismatch : .malformedHeader("webhook-signature")
    }
}

/// HubSpot's request signature v3: base64 HMAC-SHA256, keyed with the app's client secret, over
/// method + full URI + raw body + the `X-HubSpot-Request-Timestamp` value (epoch milliseconds).
public struct HubSpotSignatureV3: Sendable {
    public static let maxAge: Duration = .seconds(300)
    private let keyBytes: [UInt8]
    private var key: SymmetricKey { SymmetricKey(data: keyBytes) }

    public init(clientSecret: String) {
        keyBytes = Array(clientSecret.utf8)
    }

    public func signature(method: String, uri: String, body: some DataProtocol, timestampMillis: String) -> String {
        var mac = HMAC<SHA256>(key: key)
        mac.update(data: Data((method + uri).utf8))
        mac.update(data: body)
        mac.update(data: Data(timestampMillis.utf8))
        return Data(mac.finalize()).base64EncodedString()
    }

    public func verify(
        method: String, uri: String, body: some DataProtocol, signature: String?, timestampMillis: String?,
        now: Date
    ) throws(SignatureError) {
        guard let signature else { throw .missingHeader("X-HubSpot-Signature-v3") }
        guard let timestampMillis else { throw .missingHeader("X-HubSpot-Request-Timestamp") }
        // Parsed as an integer: a float loses the millisecond digits and breaks the comparison.
        guard let millis = Int64(timestampMillis) else { throw .malformedHeader("X-HubSpot-Request-Timestamp") }
        // Reporting overflow: a timestamp near Int64.min must be stale, not a trap that kills the receiver.
        let (ageMillis, overflow) = Int64(now.timeIntervalSince1970 * 1000).subtractingReportingOverflow(millis)
        guard !overflow, ageMillis <= Int64(Self.maxAge.components.seconds) * 1000, ageMillis >= -300_000 else {
            throw .staleTimestamp
        }
        let expected = self.signature(method: method, uri: uri, body: body, timestampMillis: timestampMillis)
        guard constantTimeEquals(Array(expected.utf8), Array(signature.utf8)) else { throw .mismatch }
    }
}
