import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// Closes a connection once one request's body passes `limit` bytes.
///
/// The webhook endpoints read and discard an oversized body up to `WebhookRouter.drainLimit` so
/// that a sender who writes its whole body before reading (Python's urllib, many webhook
/// senders) gets the 413. Past that bound the receiver stops paying for the sender's bytes; and
/// left alone, Hummingbird would wait for a `Connection: close` request's sender to finish, which
/// (blocked on a full socket) it never does. So the connection is closed here instead.
final class BodyBoundHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    let limit: Int
    private var bytes = 0
    private var closing = false

    init(limit: Int) {
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            bytes = 0
        case .body(let buffer):
            bytes += buffer.readableBytes
            guard bytes <= limit else {
                if !closing {
                    closing = true
                    context.close(promise: nil)
                }
                return
            }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }
}

extension WebhookRouter {
    /// The HTTP/1 server the receiver runs: with `BodyBoundHandler` a little past the drain limit,
    /// so the endpoint's own 413 goes out first whenever the sender stays within the bound.
    public static var server: HTTPServerBuilder {
        .http1(configuration: .init(additionalChannelHandlers: [BodyBoundHandler(limit: drainLimit + 64 * 1024)]))
    }
}
