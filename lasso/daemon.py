"""The composition root: providers under supervision, the subscription hub, the front end,
signals and reloads.

Nursery layout::

    serve()
    ├── open_gateway()             provider nursery: each chain service
    │   │                          (lasso.chain.ChainRuntime.start) gives every provider
    │   │                          its own cancel scope, so a reload can add or drain one
    │   │                          provider without touching the others
    │   ├── Supervisor.run         HTTP service: restarts with backoff; never raises
    │   └── Supervisor.run         WebSocket service, when the provider has a ws_url
    ├── open_subscription_hub()    hub nursery: one router per chain (upstream
    │                              notifications and connection events to streams),
    │                              each in its own scope, and the shared streams
    ├── open_filters()             the gateway-served filters' idle-expiry sweep
    │                              (lasso.filters); they feed from the hub's streams
    ├── run_notify()               systemd's notify protocol, when $NOTIFY_SOCKET is set
    │                              (lasso.sdnotify): watchdog pings from this loop,
    │                              status lines, STOPPING=1; READY=1 once the front
    │                              end listens, RELOADING=1/READY=1 around reloads
    ├── serve_reloads()            one reload per SIGHUP (lasso.reload): re-read and
    │                              validate the file, keep the last-known-good on a
    │                              problem, else lasso.registry applies the diff and
    │                              publishes a new snapshot
    └── FrontServer.serve          Lasso's own accept loop (lasso.web.server) around
                                   hypercorn's per-connection protocol code: one guard
                                   per connection, header and send deadlines, the
                                   connection limit (a 503 beyond it)

Signals: SIGHUP reloads; SIGINT, SIGTERM and SIGQUIT stop. Shutdown is by deadline,
never by polling. A stop signal sets the shutdown event; the front end stops
accepting (its listening sockets close), lets in-flight connections finish for
``shutdown_grace_ms``, then cancels the rest and aborts their sockets. Only then do
the blocks unwind: the hub nursery is cancelled (client streams end), then the
provider nursery (every upstream connection closed).
"""

from __future__ import annotations

import gc
import logging
import random
import resource
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config as HypercornConfig

import lasso
from lasso import accesslog, logsetup, redact
from lasso.accesslog import AccessLogSwitch
from lasso.chain import TransportFactory
from lasso.config import DEFAULT_PROFILE, ServerConfig, Settings
from lasso.eventlog import EventLog
from lasso.filters.service import open_filters
from lasso.gateway import Gateway
from lasso.metrics import Metrics
from lasso.opspublish import reloaded
from lasso.registry import Registry
from lasso.reload import ReloadState, serve_reloads
from lasso.sdnotify import GatewayStatus, ReadyWhenStarted, SdNotify, run_notify
from lasso.shared.store import RedisStore
from lasso.subscriptions.hub import open_subscription_hub
from lasso.subscriptions.session import ClientSession
from lasso.upstream.ws import Connector
from lasso.web.app import create_app
from lasso.web.asgi import LassoASGI
from lasso.web.cors import CorsLayer
from lasso.web.gate import Gate
from lasso.web.health import health
from lasso.web.server import FrontLimits, FrontServer, bind_socket

if TYPE_CHECKING:
    from lasso.workers.instance import Instance

log = logging.getLogger("lasso.daemon")


def check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` as the front end will (``bind_socket``: SO_REUSEADDR, so
    TIME_WAIT leftovers do not count) and let go at once; raise :class:`ListenError` if
    that fails. Port 0 always binds. Done before any provider or devnet node starts, so a
    busy port costs nothing to undo (the real bind still follows)."""
    bind_socket(f"{host}:{port}").close()


def bind_shared_socket(host: str, port: int, backlog: int) -> socket.socket:
    """The listening socket a group of workers shares (lasso.workers): bound once, by the
    parent, then inherited by every worker (``serve(listen_socket=...)``)."""
    sock = bind_socket(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    sock.listen(backlog)
    return sock


@asynccontextmanager
async def open_gateway(
    settings: Settings,
    *,
    rng: random.Random | None = None,
    transports: TransportFactory | None = None,
    connector: Connector | None = None,
) -> AsyncIterator[Gateway]:
    """A gateway whose providers run, supervised, until the block exits."""
    redact.update(settings)  # secrets: masked in logs and error answers from the first line
    gateway = Gateway(settings, rng=rng, transports=transports, connector=connector)
    event_log = EventLog()  # one line per operator event, from the first (lasso.eventlog)
    gateway.events.listen(event_log)
    async with trio.open_nursery() as nursery:
        gateway.services = nursery  # chains a reload adds run here too
        nursery.start_soon(event_log.run)
        for _slug, chain in gateway.chains():
            await chain.start(nursery)  # one cancel scope per provider (lasso.chain)
        if settings.shared.redis_url is not None:  # [shared]: lasso.shared (issue 12)
            store = RedisStore.from_config(settings.shared)
            await nursery.start(store.run)  # the first connect tried: shared from request one
            gateway.shared = store
        try:
            yield gateway
        finally:
            nursery.cancel_scope.cancel(reason="gateway closing")


def hypercorn_config(host: str, port: int, server: ServerConfig) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = server.shutdown_grace_ms / 1000
    config.websocket_ping_interval = server.ws_ping_interval_ms / 1000
    # Twice our own frame limit, so a too-large frame gets a JSON-RPC error from
    # us rather than a bare 1009 close from hypercorn.
    config.websocket_max_message_size = 2 * server.ws_max_frame_bytes
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # ours, not a second handler
    config.keep_alive_timeout = 75
    # hypercorn closes a keep-alive connection after 1000 requests by default;
    # a gateway's clients hold long-lived pools, so let them keep their sockets.
    config.keep_alive_max_requests = 1_000_000
    return config


async def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    shutdown: trio.Event | None = None,
    config_path: str | None = None,
    reloads: AsyncIterator[object] | None = None,
    reload_state: ReloadState | None = None,
    notify: SdNotify | None = None,
    listen_socket: socket.socket | None = None,
    instance: Instance | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the gateway until ``shutdown`` is set. ``task_status`` gets the bound URLs.

    ``listen_socket``: a listening socket to accept on instead of binding ``host:port``
    (a worker's, inherited from its parent: lasso.workers). ``instance``: the worker's
    group, for the instance-wide ``/health`` and ``/metrics`` (lasso.workers.instance).

    Each item of ``reloads`` (the SIGHUP receiver) re-reads ``config_path`` and applies
    it (:func:`lasso.reload.serve_reloads`, :class:`lasso.registry.Registry`);
    ``reload_state`` (a fresh one by default) is what ``/health``'s ``config`` shows.
    ``notify`` tells systemd (:mod:`lasso.sdnotify`): READY=1 once the front end listens,
    watchdog pings and status lines, RELOADING=1/READY=1 around each reload, STOPPING=1.
    """
    notify = notify or SdNotify()  # no socket: says nothing
    if shutdown is None:
        shutdown = trio.Event()
    server = settings.server
    host, port = host or server.host, server.port if port is None else port
    if listen_socket is None:
        check_listen(host, port)
    config = hypercorn_config(host, port, server)
    state = reload_state or ReloadState(settings, source=config_path or "(settings in memory)")
    async with (
        open_gateway(settings) as gateway,
        open_subscription_hub(gateway) as hub,
        open_filters(gateway, hub),
        trio.open_nursery() as nursery,
    ):
        status = GatewayStatus(gateway, trio.current_time())
        nursery.start_soon(run_notify, notify, status, shutdown)
        limits = front_limits(server)
        access = AccessLogSwitch(gateway.events)  # [logging] access_log: lasso.accesslog
        access.set(settings.logging.access_log)
        nursery.start_soon(access.run)  # writes the access lines in batches
        state.on_record = partial(reloaded, gateway.events)  # a Reloaded operator event
        if reloads is not None and config_path is not None:
            retune = partial(_retune, limits, config, access)
            registry = Registry(gateway, hub, state, published=retune)
            nursery.start_soon(
                partial(serve_reloads, reloads, config_path, state, registry.apply, notify=notify)
            )
        sessions = partial(ClientSession, hub)
        gate = Gate(gateway)  # API keys and inbound limits; its counters feed /metrics
        metrics = Metrics(gateway, hub, gate) if settings.metrics.enabled else None
        if instance is not None:  # siblings ask this worker for its own answers
            instance.attach(partial(health, gateway, state), metrics.render if metrics else None)
            await nursery.start(instance.serve_peers)
        quart = create_app(
            gateway, hub, state, metrics=metrics, draining=shutdown, instance=instance
        )
        app = LassoASGI(gateway, quart, sessions, draining=shutdown, gate=gate)
        cors = CorsLayer(app, lambda: gateway.settings.cors)  # [cors]: lasso/web/cors.py
        front = FrontServer(
            ASGIWrapper(cast(Any, cors)), config, limits, listen_socket=listen_socket
        )
        ready = ReadyWhenStarted(task_status, notify, status, shutdown)  # READY=1 once listening
        await front.serve(shutdown.wait, task_status=ready)
        nursery.cancel_scope.cancel(reason="stopped")


def front_limits(server: ServerConfig) -> FrontLimits:
    return FrontLimits(
        max_connections=server.max_connections,
        header_timeout_s=server.header_timeout_ms / 1000,
        send_timeout_s=server.ws_send_timeout_ms / 1000,
        grace_s=server.shutdown_grace_ms / 1000,
        max_connections_per_ip=server.max_connections_per_ip,
        fast_path=server.http_fast_path,
        max_ws_connections=server.max_ws_connections,
    )


def _retune(
    limits: FrontLimits, config: HypercornConfig, access: AccessLogSwitch, settings: Settings
) -> None:
    """A reload's new front-end limits and ``[logging]`` (format, level, access log)."""
    _retune_front(limits, config, settings)
    accesslog.flush()  # lines of calls before the reload keep the format they were made in
    logsetup.apply(settings.logging.format, settings.logging.level)
    access.set(settings.logging.access_log)


def _retune_front(limits: FrontLimits, config: HypercornConfig, settings: Settings) -> None:
    """A reload's new front-end deadlines and caps, read at their next use (max_connections,
    the port and hypercorn's WebSocket sizes need a restart)."""
    new = front_limits(settings.server)
    limits.header_timeout_s = new.header_timeout_s
    limits.send_timeout_s = new.send_timeout_s
    limits.grace_s = new.grace_s
    limits.max_connections_per_ip = new.max_connections_per_ip
    limits.fast_path = new.fast_path
    limits.max_ws_connections = new.max_ws_connections
    config.graceful_timeout = new.grace_s


#: Descriptors beyond client connections: upstream sockets, devnet pipes, log files.
FD_MARGIN = 256


def raise_open_file_limit(max_connections: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; warn if it stays too low.

    Each client connection is a descriptor: a limit below ``max_connections``
    would fail ``accept()`` (EMFILE) long before our own 503 could answer.
    Returns the soft limit now in force.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = hard == resource.RLIM_INFINITY
    target = max(soft, max_connections + FD_MARGIN) if unlimited else hard
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError) as exc:
            log.warning("could not raise the open-file limit from %d: %s", soft, exc)
    if soft < max_connections + FD_MARGIN:
        log.warning(
            "open-file limit %d is below server.max_connections (%d) + %d: "
            "connections may fail with EMFILE before the limit answers 503",
            soft,
            max_connections,
            FD_MARGIN,
        )
    return soft


#: Generation-0 threshold for the daemon (CPython's default is 700). A gateway
#: allocates many short-lived objects per request and per notification; with
#: the default, collections land in subscription fan-outs: one head to 10,000
#: clients cost 179 us/message of CPU against 82 us at 50,000 (make bench).
GC_GEN0_THRESHOLD = 50_000


def tune_gc() -> None:
    """Collect less often, and never re-scan what start-up allocated."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
    gc.freeze()


async def run_until_signalled(
    settings: Settings, *, host: str | None, port: int | None, config_path: str | None = None
) -> None:
    """``lasso serve``: serve until SIGINT, SIGTERM or SIGQUIT, then drain and exit;
    each SIGHUP reloads ``config_path``. A busy port raises :class:`ListenError` at once."""
    check_listen(host or settings.server.host, settings.server.port if port is None else port)
    raise_open_file_limit(settings.server.max_connections)
    with SdNotify.take_from_environ() as notify:  # systemd's Type=notify, if it started us
        async with _reload_signals() as reloads, _shutdown_on_signal() as shutdown:
            await _serve_and_announce(settings, host, port, shutdown, config_path, reloads, notify)


async def run_with_devnet(
    settings: Settings,
    *,
    host: str | None,
    port: int | None,
    nodes: int = 3,
    block_time_s: float = 1.0,
    port_base: int = 8545,
    prune_history: dict[int, int] | None = None,
    config_path: str | None = None,
) -> None:
    """``lasso up`` (what ``make run`` runs): the lockstep devnet, then the gateway.
    SIGHUP reloads the gateway's ``config_path`` and keeps the devnet running.
    ``prune_history`` runs nodes pruned, as :func:`lasso.devnet.open_devnet` says.
    A busy gateway port raises :class:`ListenError` before any node starts; one that
    is taken while the nodes start fails the gateway, and the nodes stop on the way out."""
    from lasso.devnet import open_devnet
    from lasso.devnet.cli import node_line
    from lasso.devnet.follow import follow_devnet

    check_listen(host or settings.server.host, settings.server.port if port is None else port)
    raise_open_file_limit(settings.server.max_connections)
    # Taken before the nodes start: they must not inherit the variables.
    with SdNotify.take_from_environ() as notify:
        async with (
            _reload_signals() as reloads,
            _shutdown_on_signal() as shutdown,
            open_devnet(
                nodes=nodes,
                block_time_s=block_time_s,
                port_base=port_base,
                prune_history=prune_history,
            ) as devnet,
        ):
            print(f"devnet: {nodes} anvil nodes, a block every {block_time_s:g}s", flush=True)
            for node in devnet.nodes:
                print(f"  {node_line(node)}", flush=True)
            # The config's devnet chain follows the nodes' actual ports, at start and on reload.
            adjust = partial(follow_devnet, ports=[node.port for node in devnet.nodes])
            await _serve_and_announce(
                adjust(settings), host, port, shutdown, config_path, reloads, notify, adjust=adjust
            )


async def _serve_and_announce(
    settings: Settings,
    host: str | None,
    port: int | None,
    shutdown: trio.Event,
    config_path: str | None,
    reloads: AsyncIterator[int],
    notify: SdNotify,
    *,
    adjust: Callable[[Settings], Settings] | None = None,
) -> None:
    """``adjust``: applied to each reloaded file's settings (``ReloadState.adjust``)."""
    state = ReloadState(settings, source=config_path or "(settings in memory)", adjust=adjust)
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            partial(
                serve,
                settings,
                host=host,
                port=port,
                shutdown=shutdown,
                config_path=config_path,
                reloads=reloads,
                reload_state=state,
                notify=notify,
            )
        )
        tune_gc()
        print(_banner(settings, binds, reloadable=config_path is not None), flush=True)


@asynccontextmanager
async def _reload_signals() -> AsyncIterator[AsyncIterator[int]]:
    """SIGHUPs, from the very start: one that arrives while the gateway (or ``lasso up``'s
    devnet) is still starting waits its turn, never taking the default action (exit)."""
    with trio.open_signal_receiver(signal.SIGHUP) as reloads:
        yield reloads


@asynccontextmanager
async def _shutdown_on_signal() -> AsyncIterator[trio.Event]:
    """An event the first SIGINT, SIGTERM or SIGQUIT sets (each would otherwise
    end the process at once, orphaning ``lasso up``'s devnet nodes, which run in their
    own sessions). The handlers stay installed for the whole block: a second signal
    (``make`` forwards the one ``timeout`` sent it, for one) must not kill the process
    mid-drain, before its devnet nodes are stopped."""
    shutdown = trio.Event()
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)  # SIGHUP reloads
    with trio.open_signal_receiver(*stops) as signals:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch_signals, signals, shutdown)
            try:
                yield shutdown
            finally:
                nursery.cancel_scope.cancel(reason="stopped")


def _banner(settings: Settings, binds: list[str], *, reloadable: bool = False) -> str:
    base = binds[0] if binds else "?"
    lines = [f"lasso {lasso.__version__} listening on {', '.join(binds)}"]
    ws_base = "ws" + base.removeprefix("http") if base.startswith("http") else base
    for slug, profile in settings.profiles.items():
        prefix = "" if slug == DEFAULT_PROFILE else f"/profile/{slug}"
        for name in profile.chains:
            lines.append(f"  JSON-RPC   {base}/rpc{prefix}/{name}")
            lines.append(f"  WebSocket  {ws_base}/ws/rpc{prefix}/{name}")
    lines.append(f"  health     {base}/health  (readiness: {base}/health/ready)")
    if settings.metrics.enabled:
        lines.append(f"  metrics    {base}/metrics")
    lines.append(f"  dashboard  {base}/dashboard")
    lines.append("Ctrl-C or SIGTERM drains in-flight requests and stops.")
    if reloadable:
        lines.append("SIGHUP (lasso reload) re-reads the config file and applies it.")
    return "\n".join(lines)


async def _watch_signals(signals: AsyncIterator[int], shutdown: trio.Event) -> None:
    async for signum in signals:
        if shutdown.is_set():
            log.info("%s: already draining", signal.Signals(signum).name)
        else:
            log.info("%s: draining in-flight requests", signal.Signals(signum).name)
            shutdown.set()
