"""Server-to-client WebSocket frames (RFC 6455 section 5.2), built without wsproto.

A server's frame is never masked, so a text message is one header, chosen by the
payload's length, then the payload as is: the bytes wsproto writes for a
``TextMessage`` on a connection without extensions (one final frame, no
fragmentation). The WebSocket fan-out builds its frames here once per client and
writes them straight to the socket (``lasso.web.ws``); a connection that negotiated
an extension (permessage-deflate) keeps hypercorn's wsproto path.
"""

from __future__ import annotations

_FIN_TEXT = 0x81


def text_frame(payload: bytes) -> bytes:
    """One unmasked final text frame carrying ``payload`` (UTF-8, checked by the caller)."""
    n = len(payload)
    if n < 126:
        return bytes((_FIN_TEXT, n)) + payload
    if n < 65_536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload
