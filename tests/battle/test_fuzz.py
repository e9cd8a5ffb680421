"""The fuzz phase (battle/fuzz.py) and its replay (battle/replay.py).

Without anvil: a saved failure round-trips; a fake oracle's failures are shrunk and told
apart (one per rule and kind of reason); the wall-clock budget stops the run however
many examples were asked for. With anvil: a gateway made stricter than its node
(``max_json_depth = 8``) fails the phase, each failure is saved with its replay command
and comes back first from the example database next run; replaying it against a stock
Lasso says fixed (exit 0), and a planted failure still fails (exit 1).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import trio

from battle.chaindata import ChainData, create_chain_data
from battle.fuzz import Judged, Session, load_drawn, run_fuzz, save_failure
from battle.oracle import Verdict
from battle.params import SMALL
from battle.replay import devnet_settings, main_replay, replay, serve_lasso
from battle.strategies import NO_ID, Drawn
from lasso.corpus import Answer, CorpusRequest
from lasso.devnet import open_devnet

DATA = ChainData(
    block_hashes=tuple("0x" + f"{n:02x}" * 32 for n in range(4)),
    tx_hashes=("0x" + "aa" * 32,),
    tx_blocks=(1,),
    emitter="0x" + "e1" * 20,
    reverter="0x" + "e2" * 20,
    topic="0x" + "70" * 32,
    log_block=2,
    funded=("0x" + "f1" * 20,),
    empty=("0x" + "00" * 20,),
)


def single(method: str, body: bytes, rid: object = 1) -> Drawn:
    return Drawn((CorpusRequest(method, method, body, rid),), body, batch=False)


def test_a_saved_failure_round_trips(tmp_path: Path) -> None:
    items = (
        CorpusRequest(
            "eth_chainId", "eth_chainId", b'{"method":"eth_chainId","id":"\xc3\xbc"}', "ü"
        ),
        CorpusRequest("net_version", "net_version", b'{"method":"net_version"}', NO_ID),
    )
    drawn = Drawn(items, b"[" + b",".join(r.body for r in items) + b"]", batch=True)
    verdict = Verdict(False, "node's answer", "why", Answer(200, b"[]"), Answer(200, b"{}"))
    path = tmp_path / "failures" / "1-x.json"
    save_failure(path, drawn, Judged(verdict, Answer(None, b"[]")), seed=7, data=DATA)
    record = json.loads(path.read_text())
    assert load_drawn(record) == drawn
    assert record["seed"] == 7 and record["replay"] == f"python -m battle replay {path}"
    assert record["lasso_answer"] == {"status": 200, "body": "{}"}


def fake_oracle(drawn: Drawn) -> Judged:
    """Fails eth_chainId (with a status that varies) and batches of three or more."""
    if drawn.batch and len(drawn.requests) >= 3:
        return Judged(Verdict(False, "node's answer", "batch of 3 not answered"))
    if any(r.method == "eth_chainId" for r in drawn.requests):
        return Judged(Verdict(False, "sound HTTP", f"HTTP {500 + len(drawn.body) % 9}"))
    return Judged(Verdict(True, "node's answer"))


@pytest.mark.slow
def test_distinct_failures_are_shrunk_and_reported_once_each(tmp_path: Path) -> None:
    session = Session(fake_oracle, DATA, sizes=SMALL)
    found = session.run(seed=3, max_examples=300, database=tmp_path / "db", budget_s=60)
    by_rule = {f.judged.verdict.rule: f.drawn for f in found}
    assert sorted(by_rule) == ["node's answer", "sound HTTP"], [str(f) for f in found]
    assert [r.method for r in by_rule["sound HTTP"].requests] == ["eth_chainId"]
    assert len(by_rule["node's answer"].requests) == 3  # shrunk to the smallest batch
    assert session.examples > 50 and len(session.methods) >= 40


def test_the_budget_stops_the_run_whatever_max_examples_says(tmp_path: Path) -> None:
    calls: list[Drawn] = []

    def slow_oracle(drawn: Drawn) -> Judged:
        calls.append(drawn)
        time.sleep(0.01)
        return Judged(Verdict(True, "node's answer"))

    session = Session(slow_oracle, DATA, sizes=SMALL)
    start = time.monotonic()
    found = session.run(seed=1, max_examples=100_000, database=tmp_path / "db", budget_s=0.2)
    assert found == [] and time.monotonic() - start < 5
    assert 0 < session.examples == len(calls) < 100


def planted(path: Path) -> Path:
    """A failure the oracle's expectation forces: the body asks eth_chainId, which is
    answered, but the saved method is eth_accounts, which the gateway must refuse."""
    body = b'{"jsonrpc":"2.0","id":5,"method":"eth_chainId","params":[]}'
    drawn = Drawn((CorpusRequest("eth_accounts", "eth_accounts", body, 5),), body, batch=False)
    verdict = Verdict(False, "refused by design", "not a JSON-RPC error")
    save_failure(path, drawn, Judged(verdict), seed=0, data=DATA)
    return path


@pytest.mark.integration
@pytest.mark.slow
async def test_a_stricter_gateway_fails_the_phase_and_its_failures_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    strict = "[server]\nmax_json_depth = 8\n"  # the oracle expects the default, 64
    with trio.fail_after(120):
        async with open_devnet(nodes=2, block_time_s=None, port_base=0) as devnet:
            data = await create_chain_data(devnet)
            node = devnet.nodes[0]
            async with serve_lasso(devnet_settings(devnet, strict)) as base:
                url = f"{base}/rpc/devnet"
                result = await run_fuzz(
                    url, node.http_url, node.ws_url, data,
                    seed=11, max_examples=120, outdir=tmp_path, budget_s=12,
                )  # fmt: skip
                again = await run_fuzz(
                    url, node.http_url, node.ws_url, data,
                    seed=99, max_examples=1, outdir=tmp_path, budget_s=10,
                )  # fmt: skip
        out = capsys.readouterr().out
        assert "fuzz seed: 11" in out and "fuzz seed: 99" in out
        assert result.failures and result.seed == 11
        assert result.methods >= 30 and result.examples > 50
        first = result.failures[0]
        assert first.replay == f"python -m battle replay {first.saved_as}"
        assert "nested deeper than 8" in first.lasso_answer, first
        assert first.replay in out
        # The database hands the saved failures back first, whatever the new seed.
        assert {f.rule for f in again.failures} >= {first.rule}
        assert await replay(Path(first.saved_as)) == 0  # a stock Lasso: fixed
        assert await replay(planted(tmp_path / "planted.json")) == 1
    out = capsys.readouterr().out
    assert "fixed" in out and "still fails" in out and "[refused by design]" in out


@pytest.mark.integration
@pytest.mark.slow
def test_the_replay_command_exits_1_while_the_failure_stands(tmp_path: Path) -> None:
    assert main_replay([str(planted(tmp_path / "planted.json"))]) == 1
