"""Test support: in-process doubles that only the test suite uses.

Scripted fake upstreams (``fakes``: :class:`FakeNode`, :class:`FakeHttpTransport`;
``fake_ws``: a fake WebSocket node on trio memory streams; ``auth_node``: a
loopback node that wants credentials) and an in-process ASGI driver (``asgi``).
They exist to run scenarios on trio's ``MockClock`` without sockets, and the
fakes are held to the real transports' behaviour by ``tests/conformance``.
Production never imports them, so they are not part of the installed package;
the chaos tooling that the battle harness ships with Lasso (fault proxy, TCP cut,
the fault vocabulary) is :mod:`lasso.chaos`.
"""
