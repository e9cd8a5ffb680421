"""The battle env: targets, the rewritten config, the gateway subprocess and every Chaos action.

The devnet test runs one env and one gateway (a real ``lasso serve`` subprocess) and goes
through every action, checking each changes what the gateway sees and is recorded; the
rest need no anvil: the config writer and masking, the config target's rewrite, the broken
gateway's config, and a public target without network.
"""

from __future__ import annotations

import base64
import os
import signal
import tomllib
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import trio

from battle.control import Need
from battle.env import TargetUnavailable, mask_config, open_battle_env
from battle.events import ChaosEvent, Recorder
from battle.gateway_proc import GatewayProcess, fetch_health
from battle.harness_chaos import ChaosUnsupported, ConfigFile, HarnessChaos
from battle.targets import check_reachable
from battle.tomlwrite import dumps
from lasso.chaos import Fault, logs_limit
from lasso.config import load_settings, parse_settings
from lasso.devnet import NodeHealth

REPO = Path(__file__).resolve().parents[2]
JSON = {"content-type": "application/json"}


def rpc(method: str, params: list[Any] | None = None, rid: int = 1) -> bytes:
    return msgspec.json.encode(
        {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or []}
    )


def served_by(answer: httpx.Response) -> str | None:
    meta = answer.headers.get("x-lasso-meta")
    if meta is None:
        return None
    decoded = msgspec.json.decode(base64.urlsafe_b64decode(meta + "=" * (-len(meta) % 4)))
    return decoded.get("selected_provider", {}).get("id")


async def health_provider(client: httpx.AsyncClient, gw: GatewayProcess, pid: str) -> Any:
    report = await fetch_health(client, gw.health_url)
    assert report is not None
    return next(p for p in report["chains"]["devnet"]["providers"] if p["id"] == pid)


# --- the TOML writer and masking (no I/O) ------------------------------------------------------


def test_settings_toml_round_trips_through_the_writer() -> None:
    original = tomllib.loads((REPO / "settings.toml").read_text())
    written = dumps(original, header="a header\nof two lines")
    assert tomllib.loads(written) == original
    assert written.startswith("# a header\n# of two lines\n")
    parse_settings(written, env={})


def test_writer_handles_every_shape_the_config_uses() -> None:
    tree = {
        "server": {"allow_methods": ["evm_*"], "port": 1, "x": 1.5, "b": False},
        "routing": {"method_deadlines_ms": {}, "hedge": {"after_ms": 5, "methods": []}},
        "chains": {
            "c": {
                "aliases": ["a-b"],
                "methods": {"providers": {"eth_*": ["p"]}},
                "providers": [
                    {"id": "p", "url": "http://h/x", "headers": {"X-Key": 'q"\\\n\x01é'}}
                ],
            }
        },
        "odd key": {"inline": [{"a": 1}, 2], "nan": float("inf")},
    }
    assert tomllib.loads(dumps(tree)) == tree


def test_writer_refuses_what_toml_for_lasso_does_not_need() -> None:
    with pytest.raises(TypeError):
        dumps({"a": object()})


def test_mask_config_hides_urls_keys_and_headers() -> None:
    text = (
        'url = "https://eth-mainnet.g.alchemy.com/v2/abcdefghijklmnopqrstuvwxyz"\n'
        'ws_url = "wss://user:pw@host.example/ws?key=1"\n'
        'api_key = "sekret"\n'
        'headers = { "X-Token" = "sekret2" }\n'
    )
    masked = mask_config(text)
    for secret in ("abcdefghijklmnopqrstuvwxyz", "pw", "key=1", "sekret"):
        assert secret not in masked
    assert "eth-mainnet.g.alchemy.com" in masked


# --- the config and public targets (no anvil, no gateway) ------------------------------------

OPERATOR = """\
[routing]
max_attempts = 4

[routing.hedge]
after_ms = 100

[chains.mine]
chain_id = 5
aliases = ["m"]

[chains.mine.hedge]
after_ms = 50

[[chains.mine.providers]]
id = "local"
url = "http://127.0.0.1:9/rpc"
ws_url = "ws://127.0.0.1:9/ws"

[[chains.mine.providers]]
id = "keyed"
url = "https://rpc.example/v2/${TEST_BATTLE_KEY}"
ws_url = "wss://rpc.example/ws"
api_key = "${TEST_BATTLE_KEY}"
archival = false

[chains.other]
chain_id = 6

[[chains.other.providers]]
id = "x"
url = "http://127.0.0.1:9"
"""


@pytest.fixture
def operator_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEST_BATTLE_KEY", "k" * 24)
    path = tmp_path / "operator.toml"
    path.write_text(OPERATOR)
    return path


async def test_config_target_routes_the_chain_through_the_harness(
    operator_config: Path, tmp_path: Path
) -> None:
    async with open_battle_env(
        target="config", chain="m", config_path=operator_config, workdir=tmp_path / "w", seed=3
    ) as env:
        assert env.chain == "mine"
        assert env.oracle_http_url == "http://127.0.0.1:9/rpc"
        assert env.oracle_ws_url == "ws://127.0.0.1:9/ws"
        assert env.has(Need.PROXY) and env.has(Need.RELOAD) and env.has(Need.WEBSOCKET)
        assert not env.has(Need.NODES) and not env.has(Need.PRUNED)
        assert env.chain_data is None and env.anvil_version() is None
        written = tomllib.loads(env.config_path.read_text())
        local, keyed = written["chains"]["mine"]["providers"]
        assert local["url"] == env.link("local").gateway_url
        assert local["ws_url"].startswith("ws://127.0.0.1:") and local["ws_url"].endswith("/ws")
        assert local["ws_url"] != "ws://127.0.0.1:9/ws"
        assert keyed["ws_url"] == "wss://rpc.example/ws"  # TLS: left direct
        assert "api_key" not in keyed and keyed["archival"] is False
        assert env.link("keyed").proxy.upstream_url == "https://rpc.example/v2/" + "k" * 24
        assert written["chains"]["other"] == tomllib.loads(OPERATOR)["chains"]["other"]
        assert written["routing"]["max_attempts"] == 4 and "hedge" in written["routing"]
        assert written["server"]["host"] == "127.0.0.1"
        assert "circuit_breaker" not in written  # the operator's breaker is what is tested
        load_settings(str(env.config_path))
        infos = {p.id: p for p in env.providers()}
        assert infos["local"].role == "archival, oracle"
        assert "k" * 24 not in infos["keyed"].url and "k" * 24 not in env.config_masked()
        # no devnet: a node cannot be killed (the gateway is not needed to see that)
        chaos = HarnessChaos(env.links, Recorder(), ConfigFile(env.config_path, {}, "mine"), 0, "")
        with pytest.raises(ChaosUnsupported):
            await chaos.kill("local")


async def test_broken_env_writes_failover_off(operator_config: Path, tmp_path: Path) -> None:
    async with open_battle_env(
        target="config",
        chain="mine",
        config_path=operator_config,
        workdir=tmp_path / "w",
        seed=3,
        broken=True,
    ) as env:
        written = tomllib.loads(env.config_path.read_text())
        settings = load_settings(str(env.config_path))
    assert written["routing"]["max_attempts"] == 1
    assert "hedge" not in written["routing"] and "hedge" not in written["chains"]["mine"]
    assert settings.routing.max_attempts == 1
    chain = settings.profile("default").resolve_chain("mine")  # type: ignore[union-attr]
    assert chain is not None and chain.hedge.after_ms is None


async def test_public_target_offline_raises_target_unavailable_fast(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # .invalid never resolves (RFC 6761) and port 9 on loopback is closed: offline, for sure
    public = tmp_path / "settings.toml"
    public.write_text(
        "[chains.ethereum]\nchain_id = 1\n\n"
        '[[chains.ethereum.providers]]\nid = "a"\nurl = "https://rpc.battle.invalid"\n\n'
        '[[chains.ethereum.providers]]\nid = "b"\nurl = "http://127.0.0.1:9"\n'
    )
    monkeypatch.setattr("battle.targets.PUBLIC_SETTINGS", public)
    started = trio.current_time()
    with pytest.raises(TargetUnavailable) as caught:
        async with open_battle_env(
            target="public", chain="ethereum", config_path=None, workdir=tmp_path / "w", seed=1
        ):
            raise AssertionError("an offline public target opened")
    assert trio.current_time() - started < 5
    assert caught.value.reason.startswith("no network: rpc.battle.invalid: ")
    assert not (tmp_path / "w" / "battle.toml").exists()


async def test_reachability_passes_when_one_provider_answers() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, lambda s: s.aclose(), 0)
        port = listeners[0].socket.getsockname()[1]
        await check_reachable(["https://rpc.battle.invalid", f"http://127.0.0.1:{port}"])
        nursery.cancel_scope.cancel()


# --- the devnet: the gateway and every Chaos action ------------------------------------------


async def until(condition: Any, timeout_s: float = 10.0) -> None:
    """Poll ``condition()`` (sync or async) until true, bounded."""
    with trio.fail_after(timeout_s):
        while True:
            value = condition()
            if hasattr(value, "__await__"):
                value = await value
            if value:
                return
            await trio.sleep(0.05)


@pytest.mark.integration
@pytest.mark.slow
async def test_devnet_env_gateway_and_every_chaos_action(tmp_path: Path) -> None:
    async with open_battle_env(
        target="devnet", chain="devnet", config_path=None, workdir=tmp_path, seed=7
    ) as env:
        assert all(env.has(need) for need in Need)
        assert [p.id for p in env.providers()] == ["devnet-1", "devnet-2", "devnet-3", "devnet-4"]
        assert env.providers()[3].role == "pruned (keeps 16)"
        assert env.chain_data is not None and env.chain_data.head >= 5
        assert (env.anvil_version() or "").startswith("anvil")
        written = tomllib.loads(env.config_path.read_text())
        # Not told it is pruned: the gateway must learn it (the pruned-history scenario).
        assert "archival" not in written["chains"]["devnet"]["providers"][3]
        assert written["circuit_breaker"]["recovery_timeout_ms"] == 3000
        original = env.config_path.read_text()
        recorder = Recorder()
        async with env.gateway(recorder) as gw, httpx.AsyncClient(timeout=10) as client:
            chaos = gw.chaos
            data = env.chain_data
            assert data is not None
            assert chaos.providers == ("devnet-1", "devnet-2", "devnet-3", "devnet-4")
            assert chaos.pruned == "devnet-4"

            async def call(method: str, params: list[Any] | None = None) -> httpx.Response:
                url = gw.http_url + "?include_meta=headers"
                return await client.post(url, content=rpc(method, params), headers=JSON)

            # the gateway answers like node 0, byte for byte (retried across a block tick)
            async def same_head() -> bool:
                body = rpc("eth_blockNumber", rid=42)
                ours = await client.post(gw.http_url, content=body, headers=JSON)
                node = await client.post(env.oracle_http_url, content=body, headers=JSON)
                return ours.content == node.content

            await until(same_head)
            block1 = rpc("eth_getBlockByNumber", ["0x1", True], rid="b")  # type: ignore[arg-type]
            ours = await client.post(gw.http_url, content=block1, headers=JSON)
            assert (
                ours.content
                == (await client.post(env.oracle_http_url, content=block1, headers=JSON)).content
            )

            # set_fault(429): the proxy counts 429s, the gateway fails over
            chaos.set_retry_after("devnet-2", 1)
            chaos.set_fault("devnet-2", Fault.RATE_LIMITED_429)
            proxy = env.link("devnet-2").proxy

            async def limited() -> bool:
                assert (
                    await call("eth_getBalance", [env.chain_data.funded[0], "latest"])
                ).status_code == 200  # type: ignore[union-attr]
                return proxy.statistics().injected.get("rate_limited_429", 0) > 0

            await until(limited)
            chaos.set_fault("devnet-2", None)

            # per-method fault: only that method meets it, the gateway answers from another
            unsupported = frozenset({"eth_getCode"})
            chaos.set_fault("devnet-3", Fault.METHOD_NOT_FOUND, methods=unsupported)
            proxy3 = env.link("devnet-3").proxy

            async def code_refused() -> bool:
                answer = await call("eth_getCode", [data.emitter, "latest"])
                assert "result" in answer.json()
                return proxy3.statistics().injected.get("method_not_found", 0) > 0

            await until(code_refused)
            assert proxy3.fault is None  # other methods are untouched
            chaos.set_fault("devnet-3", None, methods=unsupported)
            assert proxy3.method_faults == {}

            # logs limit: devnet-1 refuses wide eth_getLogs with geth's message
            chaos.set_logs_limit("devnet-1", logs_limit("geth", 2))
            proxy1 = env.link("devnet-1").proxy

            async def logs_refused() -> bool:
                query = {"fromBlock": "0x0", "toBlock": hex(data.head), "address": data.emitter}
                assert "result" in (await call("eth_getLogs", [query])).json()
                return proxy1.statistics().injected.get("logs_range_refused", 0) > 0

            await until(logs_refused)
            chaos.set_logs_limit("devnet-1", None)

            # delay: what devnet-3 serves takes at least the delay
            chaos.set_delay("devnet-3", 0.3)

            async def slow_from_devnet_3() -> bool:
                sent = trio.current_time()
                answer = await call("eth_getBlockByNumber", ["latest", False])
                return served_by(answer) == "devnet-3" and trio.current_time() - sent >= 0.3

            await until(slow_from_devnet_3)
            chaos.set_delay("devnet-3", 0)

            # (Every call here names "latest": a final block or state would be answered from
            # the response cache after its first fetch, and the faulty provider never tried.)
            # cut: connection errors on devnet-1, requests still answered by the others
            relay = env.link("devnet-1").http_relay
            chaos.cut("devnet-1")

            async def devnet_1_failing() -> bool:
                answer = await call("eth_getBlockByNumber", ["latest", False])
                assert answer.status_code == 200 and "result" in answer.json()
                assert served_by(answer) != "devnet-1"
                http = (await health_provider(client, gw, "devnet-1"))["http"]
                return http["breaker"]["last_failure_kind"] is not None

            await until(devnet_1_failing)
            assert relay.cut_active
            chaos.restore("devnet-1")
            assert not relay.cut_active

            # cut_ws: the gateway's WebSocket to devnet-2 drops and stays down until restore
            async def ws_connected(pid: str) -> bool:
                return bool((await health_provider(client, gw, pid))["ws"]["connected"])

            await until(lambda: ws_connected("devnet-2"))
            chaos.cut_ws("devnet-2")
            await until(lambda: _not(ws_connected("devnet-2")))
            chaos.restore("devnet-2")

            # lag and fork: recorded, the devnet does it
            chaos.pause("devnet-2")
            assert 1 in env.devnet.statistics().paused  # type: ignore[union-attr]
            await chaos.resume("devnet-2")
            await chaos.fork("devnet-3")
            assert 2 in env.devnet.statistics().forked  # type: ignore[union-attr]
            await chaos.heal("devnet-3")

            # kill: returns once the node answers again
            await chaos.kill("devnet-3")
            assert env.devnet.health(2) in (NodeHealth.UP, NodeHealth.CATCHING_UP)  # type: ignore[union-attr]
            assert env.devnet.statistics().restarts[2] == 1  # type: ignore[union-attr]

            # reload removing a provider: /health shows it gone, generation 2
            await chaos.reload(
                lambda s: chaos.chain_table(s)["providers"].pop(), kind="reload_remove"
            )
            report = await fetch_health(client, gw.health_url)
            assert report is not None and report["config"]["generation"] == 2
            ids = [p["id"] for p in report["chains"]["devnet"]["providers"]]
            assert ids == ["devnet-1", "devnet-2", "devnet-3"]

            # a fault left on is undone (and recorded) when the gateway goes
            chaos.set_delay("devnet-1", 5)
            chaos.cut("devnet-4")
            pid = gw.pid

        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert env.config_path.read_text() == original
        assert env.link("devnet-1").proxy.delay_s == 0
        assert not env.link("devnet-4").http_relay.cut_active
        chaos_events = recorder.recording().chaos
        kinds = {(e.kind, e.target) for e in chaos_events}
        assert kinds == {
            ("rate_limited_429", "devnet-2"),
            ("method_not_found", "devnet-3"),
            ("logs_limit", "devnet-1"),
            ("delay", "devnet-3"),
            ("cut", "devnet-1"),
            ("ws_cut", "devnet-2"),
            ("lag", "devnet-2"),
            ("fork", "devnet-3"),
            ("kill", "devnet-3"),
            ("reload_remove", None),
            ("delay", "devnet-1"),
            ("cut", "devnet-4"),
        }
        assert all(isinstance(e, ChaosEvent) and e.ended_at is not None for e in chaos_events)
        assert all(e.started_at <= e.ended_at for e in chaos_events)  # type: ignore[operator]

        # a gateway that dies mid-scenario does not hang the harness
        with trio.fail_after(15):
            async with env.gateway(Recorder()) as gw:
                os.kill(gw.pid, signal.SIGKILL)
                with pytest.raises(Exception, match=r"gone|no reload"):
                    await gw.chaos.reload(lambda s: None, kind="reload")
            assert gw.returncode == -signal.SIGKILL
        assert not (tmp_path / "gateway.pid").exists()

        # log traffic: logs each block for the subscribers
        assert await env.log_traffic(2.5) >= 1
        logs = await env.devnet.request(  # type: ignore[union-attr]
            0, "eth_getLogs", [{"address": data.emitter, "fromBlock": hex(data.head + 1)}]
        )
        assert logs and all(log["topics"] == [data.topic] for log in logs)


async def _not(value: Any) -> bool:
    return not await value
