"""State shared across workers and instances through Redis (``[shared]``, issue 12).

- :mod:`lasso.shared.resp`: the RESP2 codec (pure).
- :mod:`lasso.shared.client`: one Redis connection on a Trio stream.
- :mod:`lasso.shared.tokens`: the token bucket as an atomic Lua script.
- :mod:`lasso.shared.store`: :class:`RedisStore`, the :class:`lasso.sharedstate.SharedStore`
  behind ``gateway.shared``: deadlines, fallback, one log line per outage, reconnects.
"""
