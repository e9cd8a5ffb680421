"""One upstream WebSocket connection per provider, as a package of one concept per module.

    connection  :class:`WsConnection`, the provider's WebSocket service, and its policy
    dial        opening a socket and the handshake; :class:`Connector` dials (tests plug a fake)
    link        one live connection: reader, writer and heartbeat, until it ends
    frames      parsing an upstream frame into a reply, a push or junk
    pending     the requests waiting for a reply, and whose fault an unreadable one is
    state       the connection's states and their legal transitions

The rest of Lasso imports the names below from here.
"""

from lasso.upstream.ws.connection import WsConnection, WsPolicy, WsStatistics
from lasso.upstream.ws.dial import Connector, Dialed

__all__ = ["Connector", "Dialed", "WsConnection", "WsPolicy", "WsStatistics"]
