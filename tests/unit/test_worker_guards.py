"""Health, the supervisor, the circuit breaker and the reduced forms, each on its own."""

from __future__ import annotations

import asyncio

import pytest

from streams.policy.breaker import CircuitBreaker
from streams.protocol.fit import CUT_HEADER, Outgoing, fit_dead_letter, fit_result, shrink_result
from streams.worker.health import Health
from streams.worker.supervisor import Supervisor


def test_health_faults_are_sticky_until_recovered_and_holds_only_affect_readiness() -> None:
    health = Health(("models_loaded",))
    health.set("models_loaded", True)
    assert health.alive and health.ready
    health.hold("lane-x", "breaker open")
    assert health.alive and not health.ready
    health.release("lane-x")
    health.fail("task:fetch", "crashed")
    health.fail("task:fetch", "crashed again")  # the first reason stays
    assert health.health_body() == {"alive": False, "faults": {"task:fetch": "crashed"}}
    assert not health.ready
    health.recover("task:fetch")
    assert health.alive and health.ready


async def test_a_crashing_task_is_restarted_then_marks_the_worker_dead_past_its_budget() -> None:
    health = Health(())
    restarts: list[str] = []
    runs = {"n": 0}

    async def always_crashes() -> None:
        runs["n"] += 1
        raise RuntimeError("boom")

    supervisor = Supervisor(health, restarts.append, max_restarts=3, window_s=60, backoff_s=0)
    supervisor.spawn("committer", always_crashes)
    async with asyncio.timeout(5):
        while health.alive:
            await asyncio.sleep(0.01)
    assert runs["n"] == 4 and restarts == ["committer"] * 3
    assert "crashed 4 times" in health.health_body()["faults"]["task:committer"]


async def test_a_task_that_returns_or_is_cancelled_is_not_restarted() -> None:
    health = Health(())
    supervisor = Supervisor(health, backoff_s=0)
    ran = {"n": 0}

    async def once() -> None:
        ran["n"] += 1

    async def forever() -> None:
        await asyncio.sleep(3600)

    supervisor.spawn("once", once)
    supervisor.spawn("forever", forever)
    await asyncio.sleep(0.05)
    await supervisor.stop("forever")
    assert ran["n"] == 1 and not supervisor.running("once") and health.alive


def test_the_breaker_opens_after_k_failures_and_probes_after_the_cooldown() -> None:
    breaker = CircuitBreaker(3, cooldown_ms=100)
    for now in (0, 1):
        breaker.record(False, now)
    assert breaker.decide(2) == "run"
    breaker.record(True, 2)  # a success resets the count
    for now in (3, 4, 5):
        breaker.record(False, now)
    assert breaker.is_open and breaker.decide(50) == "wait" and breaker.decide(105) == "probe"
    breaker.record(False, 106)  # a failed probe: another full cooldown
    assert breaker.decide(150) == "wait" and breaker.next_probe_ms() == 206
    breaker.record(True, 210)
    assert not breaker.is_open and breaker.decide(211) == "run"
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1)


def test_fit_dead_letter_keeps_what_fits_and_says_what_was_cut() -> None:
    record = Outgoing("dlq", b"k" * 1000, b"v" * 10_000, [("h", b"1")])
    assert fit_dead_letter(record, 100_000) is record  # fits: untouched
    cut = fit_dead_letter(record, 4_000)
    assert cut.size <= 4_000 and cut.key == b"k" * 256
    note = dict(cut.headers)[CUT_HEADER].decode()
    assert note.startswith("key:1000->256,value:10000->")
    assert dict(cut.headers)["h"] == b"1"
    assert fit_dead_letter(record, 1 << 20, value_cap=0).value == b""


def test_fit_result_and_shrink_result() -> None:
    result = {"request_id": "r" * 300, "model": "m", "model_version": None,
              "attributes": {"k": "v" * 5000}, "text": "t", "embedding": [0.1]}
    fitted, cuts = fit_result(result)
    assert fitted["request_id"] == "r" * 128 and fitted["attributes"] == {}
    assert cuts == ["request_id:300->128", "attributes:5001->0"]
    shrunk, dropped = shrink_result(fitted)
    assert shrunk["text"] is None and shrunk["embedding"] is None
    assert dropped == ["text:dropped", "embedding:dropped"]
