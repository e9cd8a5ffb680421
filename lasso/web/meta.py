"""Routing metadata on the wire: what Lasso did for one call, for clients that ask.

Opt in with ``?include_meta=headers|body`` or the ``X-Lasso-Include-Meta``
header. ``headers`` adds ``x-lasso-request-id`` and ``x-lasso-meta`` (base64url
JSON, no padding); ``body`` adds a ``lasso_meta`` member to each answer. The
record itself is the shell's :class:`lasso.callmeta.CallMeta`.
"""

from __future__ import annotations

import base64
from typing import Any

from lasso import reqid
from lasso.core.jsonrpc import encode_json

META_MODES = frozenset({"headers", "body"})


def new_request_id() -> str:
    """An id for metadata made outside a request's context (inside one, the request's
    own id is used: :func:`lasso.reqid.current`)."""
    return reqid.new_id()


def encode_header(meta: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    return base64.urlsafe_b64encode(encode_json(meta)).rstrip(b"=")
