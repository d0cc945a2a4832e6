"""The two places where the export's storage work runs side by side or takes turns, without storage: a mailbox's
pushes take turns to read and claim (shared/export/engine.py), and a bulk write's transactions run a few at once
and report the first failure only after all have finished (shared/storage/tables.py)."""

import threading
import time

import pytest

from shared.export.engine import _Turns
from shared.storage.tables import TRANSACTIONS_AT_ONCE, _all_at_once
from shared.storage.transport import storage_requests


def test_a_mailbox_takes_one_push_at_a_time_until_it_has_claimed_and_other_mailboxes_do_not_wait():
    turns = _Turns()
    events: list[str] = []
    first_in = threading.Event()

    def first() -> None:
        with turns.turn("room@x") as turn:
            events.append("first reads and claims")
            first_in.set()
            time.sleep(0.2)
            turn.end()  # claimed: sends from here on
            time.sleep(0.2)
            events.append("first done sending")

    def second() -> None:
        first_in.wait()
        with turns.turn("room@x"):
            events.append("second reads and claims")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    first_in.wait()
    began = time.perf_counter()
    with turns.turn("other@x"):  # another mailbox: no wait behind the first
        assert time.perf_counter() - began < 0.1
    for t in threads:
        t.join(5)
    assert events == ["first reads and claims", "second reads and claims", "first done sending"]
    assert turns._locks == {}  # nothing kept per mailbox once its pushes are done


def test_a_turn_ends_when_its_push_fails():
    turns = _Turns()
    with pytest.raises(RuntimeError), turns.turn("room@x"):
        raise RuntimeError("storage down")
    assert turns._locks == {}
    taken = threading.Event()

    def take() -> None:
        with turns.turn("room@x"):
            taken.set()

    thread = threading.Thread(target=take)
    thread.start()
    thread.join(2)
    assert taken.is_set()


def test_transactions_run_a_few_at_once_keep_the_callers_label_and_all_finish_before_a_failure_is_raised():
    running = 0
    peak = 0
    finished: list[int] = []
    labels: set[str | None] = set()
    guard = threading.Lock()

    def work(part: int) -> None:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
            labels.add(storage_requests()._label.get())
        time.sleep(0.05)
        with guard:
            running -= 1
            finished.append(part)
        if part == 0:
            raise ValueError("part 0 refused")

    with storage_requests().scope("start"), pytest.raises(ValueError, match="part 0"):
        _all_at_once(work, list(range(3 * TRANSACTIONS_AT_ONCE)))
    assert sorted(finished) == list(range(3 * TRANSACTIONS_AT_ONCE))  # none left running after the raise
    assert 1 < peak <= TRANSACTIONS_AT_ONCE
    assert labels == {"start"}
