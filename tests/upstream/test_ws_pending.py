"""Whose is a null-id "could not read the request" error on a WebSocket link."""

from __future__ import annotations

from lasso.upstream.ws.pending import Blame, PendingTable


def table(*sent: tuple[int, bool]) -> PendingTable:
    pending = PendingTable(16, "test")
    for rid, replay_safe in sent:
        pending.open(rid, replay_safe=replay_safe).sent = True
    return pending


def test_the_only_request_in_flight_owns_it() -> None:
    pending = table((1, True))
    pending.open(2)  # queued, never sent: cannot be the culprit
    assert pending.blame_unreadable() == Blame(owner=1)


def test_several_in_flight_send_the_replay_safe_ones_elsewhere() -> None:
    pending = table((1, True), (2, False), (3, True))
    pending.open(4, subscribe_params=b"[]", replay_safe=True).sent = True
    assert pending.blame_unreadable() == Blame(suspects=(1, 3))


def test_an_orphan_makes_a_lone_request_ambiguous_and_absorbs_a_later_error() -> None:
    pending = table((1, True), (2, True))
    pending.discard(1)  # its caller gave up before the answer: an orphan
    assert pending.blame_unreadable() == Blame(suspects=(2,))
    pending.discard(2)
    assert pending.blame_unreadable() == Blame(orphan=True)  # the first orphan's, forgotten
    assert pending.blame_unreadable() == Blame(orphan=True)  # the second orphan's
    assert pending.blame_unreadable() == Blame()  # nobody's
    pending.open(3, replay_safe=True).sent = True
    assert pending.blame_unreadable() == Blame(owner=3)


def test_a_late_answer_clears_its_orphan() -> None:
    pending = table((1, True))
    pending.discard(1)
    assert pending.resolve(1, b"{}", 0.0) is None
    pending.open(2, replay_safe=True).sent = True
    assert pending.blame_unreadable() == Blame(owner=2)


def test_failed_suspects_absorb_the_answers_still_due() -> None:
    pending = table((1, True), (2, True), (3, True))
    owner, suspects, _ = pending.blame_unreadable()
    assert (owner, suspects) == (None, (1, 2, 3))
    errors: list[int] = []
    pending.fail_suspects(suspects, lambda rid: errors.append(rid) or RuntimeError(rid))
    assert errors == [1, 2, 3] and len(pending) == 0
    pending.open(4, replay_safe=True).sent = True
    # Two answers are still due from the suspects: neither is request 4's.
    assert pending.blame_unreadable() == Blame(suspects=(4,))
