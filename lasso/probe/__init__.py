"""``lasso probe <chain>``: measure each provider's capabilities directly.

    client   one provider, called directly: single calls, a batch, a WebSocket subscription
    run      the probes of one provider, and of every provider of a chain at once
    report   the records, the table and the TOML snippet
    cli      the command

The pure parts (the method catalogue and what an answer means, the binary searches)
are :mod:`lasso.core.probe_methods` and :mod:`lasso.core.probe_search`.
"""

from lasso.probe.cli import run_probe_cli
from lasso.probe.report import ProviderReport, render_table, render_toml
from lasso.probe.run import ProbeOptions, probe_chain, probe_provider

__all__ = [
    "ProbeOptions",
    "ProviderReport",
    "probe_chain",
    "probe_provider",
    "render_table",
    "render_toml",
    "run_probe_cli",
]
