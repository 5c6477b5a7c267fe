"""StaticLane: every job ends with exactly one final status, whatever the model does."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from models.fake import HANG_MARKER, RAISE_MARKER
from streams.clock import mono_ms
from tests.unit.lane_harness import TP0, TP1, job, policy, static_rig, wait_for


async def test_a_poison_input_in_a_batch_of_8_fails_alone() -> None:
    rig = static_rig(wait_ms=50.0)
    rig.lane.start()
    for i in range(8):
        rig.lane.add(job(f"r{i}", f"text {RAISE_MARKER if i == 5 else i}"))
    await wait_for(lambda: len(rig.outcomes.results) == 8)
    statuses = {r["request_id"]: r["status"] for r in rig.outcomes.results}
    assert statuses.pop("r5") == "error" and set(statuses.values()) == {"ok"}
    (failed, error), = rig.outcomes.letters
    assert failed["error"]["code"] == "model_error" and RAISE_MARKER in str(error)
    assert failed["error"]["message"] == "model m failed on this request (RuntimeError)"
    assert rig.runner.calls <= 1 + 2 * 3  # the batch, then bisection down to r5 alone
    assert rig.health.alive and not rig.lane.breaker.is_open
    await rig.lane.stop()


async def test_a_runner_that_fails_transiently_twice_then_succeeds_answers_ok() -> None:
    rig = static_rig(policy(transient_retries=2), fake_fail="transient:2")
    rig.lane.start()
    for i in range(3):
        rig.lane.add(job(f"r{i}"))
    await wait_for(lambda: len(rig.outcomes.results) == 3)
    assert {r["status"] for r in rig.outcomes.results} == {"ok"}
    assert rig.observed.failures == [("m", "transient"), ("m", "transient")]
    assert rig.runner.calls == 3 and rig.outcomes.letters == []
    await rig.lane.stop()


async def test_transient_failures_past_the_budget_are_dead_lettered() -> None:
    rig = static_rig(policy(transient_retries=1, breaker_after=100), fake_fail="transient:1000")
    rig.lane.start()
    rig.lane.add(job("only"))
    await wait_for(lambda: len(rig.outcomes.results) == 1)
    assert rig.outcomes.results[0]["status"] == "error"
    assert rig.runner.calls == 2  # the call and one retry
    await rig.lane.stop()


async def test_a_runner_that_fails_every_batch_opens_the_breaker_and_the_backlog_waits(
        tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.touch()
    rig = static_rig(policy(breaker_after=2, breaker_cooldown_s=0.1), batch=2,
                     fake_fail_while=str(broken))
    rig.lane.start()
    for i in range(10):
        rig.lane.add(job(f"r{i}"))
    await wait_for(lambda: rig.lane.breaker.is_open)
    await asyncio.sleep(0.4)  # a few probes fail meanwhile
    answered = len(rig.outcomes.results)
    assert answered == 4  # two failed batches of two, then nothing is turned into errors
    assert {r["error"]["code"] for r in rig.outcomes.results} == {"model_error"}
    assert not rig.health.ready and rig.health.alive
    assert "circuit breaker open" in next(iter(rig.health.is_ready()["holds"].values()))
    broken.unlink()  # the model heals: the next probe closes the breaker
    await wait_for(lambda: len(rig.outcomes.results) == 10)
    assert not rig.lane.breaker.is_open and rig.health.ready
    per_request = Counter(r["request_id"] for r in rig.outcomes.results)
    assert set(per_request.values()) == {1}  # exactly one final status each
    assert [r["status"] for r in rig.outcomes.results[4:]] == ["ok"] * 6
    await rig.lane.stop()


async def test_a_hung_batch_times_out_marks_the_worker_dead_and_stops_the_lane() -> None:
    rig = static_rig(policy(batch_timeout_s=0.2), batch=2, wait_ms=20.0)
    rig.lane.start()
    rig.lane.add(job("hang", f"x {HANG_MARKER}"))
    rig.lane.add(job("mate"))
    await wait_for(lambda: len(rig.outcomes.results) == 2)
    assert {r["error"]["code"] for r in rig.outcomes.results} == {"model_timeout"}
    assert len(rig.outcomes.letters) == 2
    assert not rig.health.alive
    assert "timeout" in next(iter(rig.health.health_body()["faults"].values()))
    rig.lane.add(job("later"))  # the thread is wedged: nothing more is computed here
    await asyncio.sleep(0.2)
    assert len(rig.outcomes.results) == 2 and rig.lane.batcher.pending == 1
    await rig.lane.stop()
    rig.runner.close()  # releases the hung call (the daemon thread ends)


async def test_the_most_urgent_ready_batch_goes_first_across_task_queues() -> None:
    rig = static_rig(batch=2, wait_ms=0.0, fake_delay_s=0.02)
    for i in range(20):
        rig.lane.add(job(f"e{i}", task="embed"))
    rig.lane.add(job("urgent", task="classify", priority=100))
    rig.lane.start()
    await wait_for(lambda: len(rig.outcomes.results) == 21)
    assert rig.outcomes.results[0]["request_id"] == "urgent"
    await rig.lane.stop()


async def test_remove_takes_out_queued_jobs_of_revoked_partitions_only() -> None:
    rig = static_rig()
    rig.lane.add(job("a", tp=TP0))
    rig.lane.add(job("b", tp=TP1))
    dropped = rig.lane.remove(lambda j: j.source.tp != TP1)
    assert [j.item.request_id for j in dropped] == ["b"] and rig.lane.batcher.pending == 1


async def test_abandon_never_waits_for_the_computing_batch() -> None:
    rig = static_rig(batch=4, wait_ms=0.0, fake_delay_s=0.5)
    rig.lane.start()
    rig.lane.add(job("a", tp=TP1))
    await wait_for(lambda: rig.lane.busy)
    started = mono_ms()
    assert await rig.lane.abandon({TP1}) == 1
    assert mono_ms() - started < 50
    await rig.lane.stop()


async def test_retire_finishes_the_queue_then_stops() -> None:
    rig = static_rig(batch=2, wait_ms=0.0, fake_delay_s=0.01)
    rig.lane.start()
    for i in range(7):
        rig.lane.add(job(f"r{i}"))
    await rig.lane.retire(poll_s=0.01)
    assert len(rig.outcomes.results) == 7 and not rig.supervisor.running(rig.lane.task_name)


async def test_expired_jobs_are_answered_without_compute() -> None:
    rig = static_rig(wait_ms=10_000.0)
    rig.lane.start()
    rig.lane.add(job("late", deadline_ms=mono_ms() + 30))
    await wait_for(lambda: len(rig.outcomes.results) == 1)
    assert rig.outcomes.results[0]["status"] == "expired" and rig.runner.calls == 0
    await rig.lane.stop()


async def test_a_crashing_lane_loop_is_restarted_by_its_supervisor() -> None:
    rig = static_rig(wait_ms=0.0)
    crashes = {"left": 2}
    real = rig.lane._expire

    async def flaky(now: float) -> None:
        if crashes["left"]:
            crashes["left"] -= 1
            raise RuntimeError("bug in the lane")
        await real(now)

    rig.lane._expire = flaky
    rig.lane.start()
    rig.lane.add(job("r"))
    await wait_for(lambda: len(rig.outcomes.results) == 1)
    assert rig.health.alive and crashes["left"] == 0
    await rig.lane.stop()
