"""The dashboard in a real browser: Debian's headless Chromium, driven by Playwright,
in front of the real daemon and a real anvil devnet.

The page must show live values as they change: the new height after blocks are mined,
the routing decisions of calls just made, a failover and an open HTTP breaker once a
node's network is cut, and a reload in the history after a "SIGHUP". Each is awaited in
the DOM (the page updates from its SSE feed), then a screenshot is taken.

Playwright is asyncio-based; its sync API runs on one dedicated thread (its objects
belong to the thread that made them) while trio runs the gateway. ``make install``
installs chromium where it can (Debian, as root); without it, or without Playwright,
the test is skipped with the reason.

``LASSO_SCREENSHOT_DIR=docs`` also saves the screenshot as ``docs/dashboard.png``.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from lasso.chaos.tcpcut import TcpRelay, open_tcp_relay
from lasso.devnet import Devnet, open_devnet
from lasso.reload import ReloadState
from tests.integration.test_subscriptions_devnet import subscribe
from tests.support.front import relayed_providers, serve_reloadable, sighup_applied

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Debian's chromium (``make install`` installs it), or the one ``LASSO_CHROMIUM`` names.
CHROMIUM = os.environ.get("LASSO_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
#: The machine (and many deployments) is offline: without these, chromium keeps trying
#: to reach Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: How long the page may take to show a value (it updates once a second).
SHOWN_MS = 20_000

T = TypeVar("T")


def _missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (a dev dependency: make install)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no chromium at {CHROMIUM} (make install installs Debian's, as root)"
    return None


pytestmark.append(pytest.mark.skipif(_missing() is not None, reason=str(_missing())))


class Browser:
    """One headless Chromium page; every Playwright call runs on one thread."""

    def __init__(self, profile: Path) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chromium")
        self._profile = profile
        self._playwright: Any = None
        self._context: Any = None
        self.page: Any = None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        future = self._thread.submit(fn, *args)
        return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)

    def _start(self) -> None:
        from playwright.sync_api import sync_playwright

        self._playwright = sync_playwright().start()
        self._context = self._playwright.chromium.launch_persistent_context(
            str(self._profile),  # a fresh user-data dir
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1400, "height": 1000},
        )
        self.page = self._context.new_page()

    def _stop(self) -> None:
        try:
            if self._context is not None:
                self._context.close()
        finally:
            if self._playwright is not None:
                self._playwright.stop()

    async def open(self) -> None:
        await self.run(self._start)

    async def close(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(30):
            await self.run(self._stop)
        self._thread.shutdown(wait=False)

    async def shows(self, selector: str, text: str) -> None:
        """Wait until the first element matching ``selector`` contains ``text``."""

        def wait() -> None:
            from playwright.sync_api import expect

            expect(self.page.locator(selector).first).to_contain_text(text, timeout=SHOWN_MS)

        await self.run(wait)

    async def text(self, selector: str = "body") -> str:
        return str(await self.run(lambda: self.page.inner_text(selector)))


def settings_text(ports: list[int], threshold: int) -> str:
    return (
        f"[circuit_breaker]\nfailure_threshold = {threshold}\n"
        "[chains.devnet]\nchain_id = 31337\nblock_time_ms = 1000\nproviders = [\n"
        + relayed_providers(ports)
        + "\n]\n"
    )


class Stack:
    def __init__(
        self,
        devnet: Devnet,
        relays: list[TcpRelay],
        base: str,
        path: Path,
        state: ReloadState,
        send: trio.MemorySendChannel[object],
    ) -> None:
        self.devnet, self.relays, self.base = devnet, relays, base
        self.path, self.state, self._send = path, state, send
        self.calls = 0

    async def reload(self, text: str) -> None:
        self.path.write_text(text)
        await sighup_applied(self.state, self._send)

    async def circuit(self, client: httpx.AsyncClient, pid: str) -> str:
        """``pid``'s HTTP breaker state, from the dashboard's own snapshot."""
        snapshot = (await client.get(f"{self.base}/dashboard/snapshot.json")).json()
        (chain,) = snapshot["chains"]
        return str(next(p for p in chain["providers"] if p["id"] == pid)["http"]["circuit"])

    async def call(
        self, client: httpx.AsyncClient, method: str, params: list[Any], pin: str = ""
    ) -> Any:
        """A call routed by priority, or pinned to provider ``pin``."""
        self.calls += 1
        body = {"jsonrpc": "2.0", "id": self.calls, "method": method, "params": params}
        route = f"provider/{pin}" if pin else "priority"
        reply = await client.post(f"{self.base}/rpc/{route}/devnet", content=json.dumps(body))
        return reply.json()


@asynccontextmanager
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
        await devnet.mine()
        ports = [int(n.http_url.rsplit(":", 1)[1]) for n in devnet.nodes]
        async with open_tcp_relay(ports[0]) as r0, open_tcp_relay(ports[1]) as r1:
            path = tmp_path / "lasso.toml"
            path.write_text(settings_text([r0.port, r1.port], threshold=3))
            async with serve_reloadable(path) as front:
                yield Stack(devnet, [r0, r1], front.bind, path, front.state, front.send)


def provider_cell(pid: str, field: str) -> str:
    return f'[data-chain="devnet"] tr[data-provider="{pid}"] [data-field="{field}"]'


async def test_the_dashboard_shows_live_values_in_headless_chromium(tmp_path: Path) -> None:
    browser = Browser(tmp_path / "chromium-profile")
    with trio.fail_after(150):
        async with (
            stack(tmp_path) as rig,
            httpx.AsyncClient(trust_env=False, timeout=10) as client,
            trio.open_nursery() as nursery,
        ):
            try:
                await browser.open()
                await browser.run(browser.page.goto, f"{rig.base}/dashboard")
                await browser.shows("#conn", "live")
                await browser.shows(provider_cell("n0", "http-circuit"), "closed")

                # heights move: the page follows the chain
                for _ in range(3):
                    height = await rig.devnet.mine()
                await browser.shows(provider_cell("n0", "height"), str(height))
                await browser.shows(provider_cell("n1", "height"), str(height))

                # a client subscription: the page counts it
                await nursery.start(subscriber, rig.base.replace("http://", "ws://"))
                await browser.shows(
                    '[data-chain="devnet"] [data-field="subscriptions"]', "newHeads 1"
                )

                # routing decisions: priority sends the calls to n0
                for n in range(3):
                    assert "result" in await rig.call(
                        client, "eth_getBalance", [f"0x{n + 1:040x}", "latest"]
                    )
                await browser.shows('[data-chain="devnet"] tr.call', "eth_getBalance")
                await browser.shows('[data-chain="devnet"] tr.call [data-field="provider"]', "n0")

                # n0's network cut: calls fail over to n1, n0's HTTP breaker opens
                rig.relays[0].cut()
                assert "result" in await rig.call(
                    client, "eth_getBalance", [f"0x{100:040x}", "latest"]
                )
                # n0 may already be out of routing (its head unknown once its WebSocket is
                # gone): calls pinned to it open its breaker whatever routing thinks of it
                for n in range(101, 121):
                    if await rig.circuit(client, "n0") == "open":
                        break
                    await rig.call(client, "eth_getBalance", [f"0x{n:040x}", "latest"], pin="n0")
                await browser.shows('[data-chain="devnet"] tr.failover [data-field="from"]', "n0")
                await browser.shows('[data-chain="devnet"] tr.failover [data-field="to"]', "n1")
                await browser.shows(provider_cell("n0", "http-circuit"), "open")
                await browser.shows(provider_cell("n1", "http-circuit"), "closed")
                await browser.shows(provider_cell("n1", "latency"), "eth_getBalance (http) p50")

                # a reload ("SIGHUP") lands in the history
                await rig.reload(settings_text([r.port for r in rig.relays], threshold=4))
                await browser.shows('#reloads tr.reload[data-generation="2"]', "applied")
                await browser.shows("#generation", "config generation 2")
                height = await rig.devnet.mine()
                await browser.shows(provider_cell("n1", "height"), str(height))

                shot = tmp_path / "dashboard.png"
                await browser.run(partial(browser.page.screenshot, path=str(shot), full_page=True))
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
                if target := os.environ.get("LASSO_SCREENSHOT_DIR"):
                    shutil.copy(shot, Path(target) / "dashboard.png")

                body = await browser.text()
                for shown in ("Lasso dashboard", "devnet", "n0", "n1", str(height), "open"):
                    assert shown in body
                assert "127.0.0.1" not in body  # providers by id, never by URL
            finally:
                await browser.close()
                nursery.cancel_scope.cancel()


async def subscriber(
    base: str, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """A newHeads client that keeps reading (a client that stops reading is dropped)."""
    async with open_websocket_url(f"{base}/ws/rpc/devnet") as ws:
        await subscribe(ws, ["newHeads"])
        task_status.started()
        while True:
            await ws.get_message()
