"""Test doubles that ship with Lasso: scripted fake upstreams, verified by
the same conformance suite as the real transports (``tests/conformance``)."""
