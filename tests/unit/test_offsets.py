"""OffsetTracker: the committed position never passes an unfinished record, and stale work of
an earlier assignment can neither seed nor move a fresh one."""

from __future__ import annotations

from streams.worker.offsets import OffsetTracker


def test_out_of_order_completion_commits_only_up_to_the_lowest_unfinished() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    g = t.assign("p0")
    for offset in (10, 11, 12, 13):
        assert t.started("p0", g, offset, size=100)
    t.finished("p0", g, 12)
    t.finished("p0", g, 13)
    assert t.to_commit() == {"p0": 10}  # nothing finished at 10 yet: position stays there
    t.finished("p0", g, 10)
    assert t.to_commit() == {"p0": 11}
    t.finished("p0", g, 11)
    assert t.to_commit() == {"p0": 14}
    t.mark_committed({"p0": 14})
    assert t.to_commit() == {}  # nothing moved since
    assert t.in_flight() == 0 and t.in_flight_bytes() == 0


def test_an_unseen_partition_has_no_position_and_is_not_committed() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    t.assign("p0")
    assert t.position("p0") is None and t.to_commit() == {}
    assert t.generation("p1") is None


def test_bytes_are_summed_per_unfinished_record_and_a_duplicate_start_counts_once() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    g = t.assign("p0")
    t.started("p0", g, 1, size=1000)
    t.started("p0", g, 1, size=1000)  # redelivered within one generation
    t.started("p0", g, 2, size=24)
    assert (t.in_flight(), t.in_flight_bytes()) == (2, 1024)
    t.finished("p0", g, 1)
    assert t.in_flight_bytes() == 24
    t.forget(["p0"])
    assert (t.in_flight(), t.in_flight_bytes()) == (0, 0)


def test_revocation_then_reassignment_ignores_the_old_generation() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    old = t.assign("p0")
    t.started("p0", old, 100, size=10)
    t.started("p0", old, 101, size=10)
    t.forget(["p0"])  # revoked while 100 and 101 were in flight
    new = t.assign("p0")  # ...and assigned again: the broker hands out the committed offset
    assert new != old
    # A record fetched under the old assignment must not seed the new entry...
    assert not t.started("p0", old, 102, size=10)
    assert t.position("p0") is None
    # ...and a late completion from before the hand-over must not move the new position.
    assert t.started("p0", new, 100, size=10)
    t.finished("p0", old, 100)
    assert t.to_commit() == {"p0": 100}
    assert t.is_current("p0", new) and not t.is_current("p0", old)
    t.finished("p0", new, 100)
    assert t.to_commit() == {"p0": 101}


def test_to_commit_of_chosen_partitions_only() -> None:
    t: OffsetTracker[str] = OffsetTracker()
    ga, gb = t.assign("a"), t.assign("b")
    t.started("a", ga, 5)
    t.started("b", gb, 7)
    t.finished("a", ga, 5)
    t.finished("b", gb, 7)
    assert t.to_commit(["b", "unknown"]) == {"b": 8}
