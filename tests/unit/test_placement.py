"""The host placement policy: least loaded, down, quarantine (pure, no Docker)."""

from __future__ import annotations

from launcher.backends.placement import Placement
from launcher.trial import TrialStatus

S, F, L, C = (TrialStatus.SUCCEEDED, TrialStatus.FAILED, TrialStatus.LOST,
              TrialStatus.CANCELLED)


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def placement(*slots: int, after: int = 3) -> Placement:
    return Placement([(f"h{i}", n) for i, n in enumerate(slots)], quarantine_after=after,
                     clock=Clock())


def fill(p: Placement) -> list[int]:
    picked = []
    while (i := p.pick()) is not None:
        p.started(i)
        picked.append(i)
    return picked


def test_least_loaded_host_first_by_share_of_its_slots() -> None:
    p = placement(4, 2)
    # shares before each pick: 0/4 0/2 -> h0; 1/4 0/2 -> h1; 1/4 1/2 -> h0;
    # 2/4 1/2 -> h0 (equal: the first); 3/4 1/2 -> h1; 3/4 2/2 -> h0
    assert fill(p) == [0, 1, 0, 0, 1, 0]
    assert p.pick() is None
    p.finished(1, S, lambda: True)
    assert p.pick() == 1


def test_a_lost_trial_on_a_host_that_does_not_answer_takes_it_down() -> None:
    p = placement(1, 1)
    fill(p)
    p.finished(0, L, lambda: False, "ConnectionError")
    assert p.hosts[0].down == "stopped answering (ConnectionError)"
    assert p.healthy() == [1] and not p.answering(0)
    assert p.notes == ["host h0 stopped answering (ConnectionError)"]
    assert p.pick() is None  # h1 is busy, h0 is out
    p.finished(1, L, lambda: True)  # lost, but it answers: stays in
    assert p.healthy() == [1] and p.pick() == 1


def test_a_host_that_keeps_failing_while_another_succeeds_is_quarantined() -> None:
    p = placement(1, 1, after=3)
    for _ in range(3):
        fill(p)
        p.finished(1, S, lambda: True)
        p.finished(0, F, lambda: True)
    assert p.hosts[0].down.startswith("quarantined after 3 failed trials in a row")
    assert p.answering(0) and p.healthy() == [1]


def test_nobody_is_quarantined_when_every_host_fails() -> None:
    p = placement(1, 1, after=2)
    for _ in range(5):
        fill(p)
        p.finished(0, F, lambda: True)
        p.finished(1, F, lambda: True)
    assert p.healthy() == [0, 1] and p.notes == []


def test_a_success_resets_the_streak_and_cancelled_trials_do_not_count() -> None:
    p = placement(1, 1, after=2)
    fill(p)
    p.finished(1, S, lambda: True)
    p.finished(0, F, lambda: True)
    fill(p)
    p.finished(0, C, lambda: True)
    p.finished(1, S, lambda: True)
    fill(p)
    p.finished(0, S, lambda: True)
    p.finished(1, S, lambda: True)
    fill(p)
    p.finished(0, F, lambda: True)
    p.finished(1, S, lambda: True)
    assert p.hosts[0].streak == 1 and p.healthy() == [0, 1]
    assert p.down_summary() == "h0: ; h1: "
