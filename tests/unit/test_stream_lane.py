"""StreamingLane: failures, timeouts, retirement and cancellation never leak a slot, and no
chunk of a revoked partition is sent after its hand-over."""

from __future__ import annotations

import asyncio

from models.fake import RAISE_MARKER
from tests.unit.lane_harness import TP0, TP1, job, policy, stream_rig, wait_for


def gen(request_id: str, words: int = 4, **kw: object) -> object:
    text = " ".join(f"w{i}" for i in range(words))
    return job(request_id, text, task="generate", max_new_tokens=64, **kw)  # type: ignore[arg-type]


async def test_streams_then_answers_and_frees_its_slots() -> None:
    rig = stream_rig(slots=2)
    rig.lane.start()
    for i in range(5):
        rig.lane.add(gen(f"g{i}", stream=True))
    await wait_for(lambda: len(rig.outcomes.results) == 5)
    await asyncio.wait_for(rig.lane.idle(), 1)
    assert {r["status"] for r in rig.outcomes.results} == {"ok"}
    seqs = [c["seq"] for c in rig.outcomes.chunks if c["request_id"] == "g0"]
    assert seqs == list(range(len(seqs))) and rig.outcomes.chunks[-1]["final"]
    await rig.lane.stop()


async def test_a_failing_generation_is_dead_lettered_and_frees_its_slot() -> None:
    rig = stream_rig(slots=1)
    rig.lane.start()
    rig.lane.add(gen("bad", stream=True, words=2))
    rig.lane.add(job("bad2", f"x {RAISE_MARKER}", task="generate"))
    rig.lane.add(gen("good"))
    await wait_for(lambda: len(rig.outcomes.results) == 3)
    by_id = {r["request_id"]: r for r in rig.outcomes.results}
    assert by_id["bad2"]["error"]["code"] == "model_error" and by_id["good"]["status"] == "ok"
    assert [r["request_id"] for r, _ in rig.outcomes.letters] == ["bad2"]
    await asyncio.wait_for(rig.lane.idle(), 1)
    await rig.lane.stop()


async def test_chunks_that_cannot_be_sent_do_not_leak_the_slot() -> None:
    rig = stream_rig(slots=1)
    rig.outcomes.chunk_sink = lambda chunk: False  # every chunk "could not be sent"
    rig.lane.start()
    for i in range(3):
        rig.lane.add(gen(f"g{i}", stream=True))
    await wait_for(lambda: len(rig.outcomes.results) == 3)
    await asyncio.wait_for(rig.lane.idle(), 1)
    await rig.lane.stop()


async def test_a_generation_past_its_timeout_is_answered_and_the_worker_marked_dead() -> None:
    rig = stream_rig(policy(batch_timeout_s=0.2), slots=2, token_delay_s=0.1)
    rig.lane.start()
    rig.lane.add(gen("slow", words=100))
    await wait_for(lambda: len(rig.outcomes.results) == 1, timeout_s=3)
    assert rig.outcomes.results[0]["error"]["code"] == "model_timeout"
    assert not rig.health.alive
    await asyncio.wait_for(rig.lane.idle(), 1)  # the slot is free again
    await rig.lane.stop()


async def test_abandon_cancels_revoked_generations_and_stops_their_chunks() -> None:
    rig = stream_rig(slots=4, token_delay_s=0.02)
    rig.lane.start()
    rig.lane.add(gen("moved", words=200, tp=TP1, stream=True))
    rig.lane.add(gen("kept", words=20, tp=TP0, stream=True))
    await wait_for(lambda: any(c["request_id"] == "moved" for c in rig.outcomes.chunks))
    assert await rig.lane.abandon({TP1}) == 1
    sent_before = sum(c["request_id"] == "moved" for c in rig.outcomes.chunks)
    await wait_for(lambda: any(r["request_id"] == "kept" for r in rig.outcomes.results))
    await asyncio.sleep(0.2)
    assert sum(c["request_id"] == "moved" for c in rig.outcomes.chunks) == sent_before
    assert [r["request_id"] for r in rig.outcomes.results] == ["kept"]
    await asyncio.wait_for(rig.lane.idle(), 1)
    await rig.lane.stop()


async def test_retire_finishes_admitted_and_queued_generations() -> None:
    rig = stream_rig(slots=1)
    rig.lane.start()
    for i in range(4):
        rig.lane.add(gen(f"g{i}"))
    await rig.lane.retire(poll_s=0.01)
    assert len(rig.outcomes.results) == 4


async def test_consecutive_failed_generations_open_the_breaker() -> None:
    rig = stream_rig(policy(breaker_after=2, breaker_cooldown_s=60), slots=1)
    rig.lane.start()
    for i in range(5):
        rig.lane.add(job(f"b{i}", f"x {RAISE_MARKER}", task="generate"))
    await wait_for(lambda: rig.lane.breaker.is_open)
    await asyncio.sleep(0.1)
    assert len(rig.outcomes.results) == 2 and not rig.health.ready
    assert rig.lane.batcher.pending == 3  # the rest waits, uncommitted
    await rig.lane.stop()
