"""Streaming generation: `TextStream` (pure), the continuous-batching engine on a tiny random-weight
Llama loaded through the real code (checked against the static runner), and the fake engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.base import (
    ChatMessage,
    GenerationParameters,
    ModelInput,
    ModelRunner,
    StreamingGenerator,
    TokenEvent,
)
from models.errors import InvalidModelInput, RegistryError
from models.fake import RAISE_MARKER, fake_spec
from models.fake_streaming import FakeStreamingGenerator
from models.finish import finish_sequence
from models.loading import load_runner
from models.registry import load_registry
from models.token_stream import TextStream
from tests.unit.test_models_causal_lm import build_tiny_llama

LONG = 200  # the continuous entry's max_new_tokens: long enough to watch others overtake


class Recorder:
    """Collects events per request id; waits for finished events with a deadline."""

    def __init__(self) -> None:
        self.events: dict[str, list[TokenEvent]] = {}
        self.order: list[str] = []  # request ids in the order their finished events arrived
        self._cond = threading.Condition()

    def __call__(self, event: TokenEvent) -> None:
        with self._cond:
            self.events.setdefault(event.request_id, []).append(event)
            if event.finished:
                self.order.append(event.request_id)
            self._cond.notify_all()

    def wait(self, request_id: str, *, finished: bool = True, timeout: float = 30) -> TokenEvent:
        def ready() -> bool:
            got = self.events.get(request_id, [])
            return bool(got) and (got[-1].finished or not finished)

        with self._cond:
            assert self._cond.wait_for(ready, timeout), f"no event for {request_id}"
            return self.events[request_id][-1]

    def joined(self, request_id: str) -> str:
        return "".join(e.delta for e in self.events[request_id])


def gen(text: str, rid: str | None = None, **params: object) -> ModelInput:
    return ModelInput(request_id=rid or text, text=text, parameters=GenerationParameters(**params))  # type: ignore[arg-type]


def check_stream(events: list[TokenEvent]) -> None:
    """Exactly one finished event, last; tokens_out never decreases; deltas join to the text."""
    assert [e.finished for e in events].count(True) == 1 and events[-1].finished
    counts = [e.tokens_out for e in events]
    assert counts == sorted(counts)
    final = events[-1]
    if final.error is None:
        assert final.output is not None and final.output.tokens_out == final.tokens_out
        assert "".join(e.delta for e in events) == final.output.text


# ---- TextStream (pure) ----


def words_decode(vocab: dict[int, str]) -> TextStream:
    return TextStream(lambda ids: " ".join(vocab[i] for i in ids), eos_ids={0}, limit=5, stops=())


def test_text_stream_deltas_eos_and_limit() -> None:
    vocab = {0: "<eos>", 1: "a", 2: "bc", 3: "d"}
    stream = words_decode(vocab)
    assert [stream.update([1]), stream.update([1, 2]), stream.update([1, 2, 3])] == [
        "a",
        " bc",
        " d",
    ]
    assert stream.update([1, 2, 3, 0]) == "" and stream.finish_reason == "stop"
    assert (stream.emitted, stream.tokens_out) == ("a bc d", 3)
    capped = words_decode(vocab)
    for n in range(1, 8):
        capped.update([1] * n)
    assert (capped.emitted, capped.tokens_out, capped.finish_reason) == ("a a a a a", 5, "length")


def test_text_stream_holds_back_broken_utf8_and_possible_stops() -> None:
    raw = "é!".encode()  # é is two bytes: one "token" per byte, then "!"

    def decode(ids: list[int] | tuple[int, ...]) -> str:
        return bytes(raw[i] for i in ids).decode("utf-8", errors="replace")

    stream = TextStream(decode, eos_ids=(), limit=10, stops=())  # type: ignore[arg-type]
    assert [stream.update([0]), stream.update([0, 1]), stream.update([0, 1, 2])] == ["", "é", "!"]

    text = "one two three"
    tokens = list(range(len(text)))  # one character per token
    stop = "o t"  # spans the tokens of "two" and "three"
    stream = TextStream(
        lambda ids: "".join(text[i] for i in ids), eos_ids=(), limit=99, stops=[stop]
    )
    deltas = [stream.update(tokens[:n]) for n in range(1, len(tokens) + 1)]
    assert "".join(deltas) == "one tw" == stream.emitted and stream.finish_reason == "stop"
    same = finish_sequence(
        tokens,
        eos_ids=(),
        max_new_tokens=99,
        stops=[stop],
        decode=lambda ids: "".join(text[i] for i in ids),
    )
    assert (same.text, same.tokens_out) == (stream.emitted, stream.tokens_out)
    held = TextStream(
        lambda ids: "".join(text[i] for i in ids), eos_ids=(), limit=99, stops=["xyz"]
    )
    assert held.update(tokens[:5]) == "one" and held.close("cancelled") == " t"


# ---- the continuous engine on a tiny Llama ----


@pytest.fixture(scope="module")
def models(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ModelRunner, StreamingGenerator]]:
    root = tmp_path_factory.mktemp("tiny-cb")
    build_tiny_llama(root / "weights")
    common = 'tasks = ["generate"]\nsource = "weights"\nmax_batch_size = 4\nmax_input_tokens = 16\n'
    (root / "registry.toml").write_text(
        f'[[models]]\nname = "static"\nversion = "1"\n{common}max_new_tokens = 12\n\n'
        f'[[models]]\nname = "cb"\nversion = "1"\n{common}max_new_tokens = {LONG}\n'
        'engine = "continuous"\n',
        encoding="utf-8",
    )
    registry = load_registry(root / "registry.toml")
    static = load_runner(registry.get("static"), root / "cache", 1)
    engine = load_runner(registry.get("cb"), root / "cache", 1)
    assert isinstance(engine, StreamingGenerator) and isinstance(engine, ModelRunner)
    assert not isinstance(static, StreamingGenerator)
    # Its threads are daemons: a process that forgets close() still exits.
    assert engine._manager._generation_thread.daemon  # type: ignore[attr-defined]
    yield static, engine
    engine.close()


@pytest.fixture(scope="module")
def long_prompt(models: tuple[ModelRunner, StreamingGenerator]) -> str:
    """A prompt whose greedy answer runs to the engine's limit (random weights may emit EOS)."""
    for text in ["the cat", "a dog ran", "hello world", "red green", "what is the capital"]:
        out = models[1].run("generate", [gen(text, max_new_tokens=LONG)])[0]
        if out.finish_reason == "length":
            return text
    pytest.skip("every candidate prompt hits EOS early with these random weights")


def test_greedy_matches_the_static_runner(models: tuple[ModelRunner, StreamingGenerator]) -> None:
    static, engine = models
    chat = ModelInput(
        "chat",
        messages=(ChatMessage("system", "hello"), ChatMessage("user", "the cat")),
        parameters=GenerationParameters(max_new_tokens=8),
    )
    batch = [
        gen("the cat", max_new_tokens=12),
        gen("a dog ran in the park", max_new_tokens=5),
        gen(" ".join(["red green blue yellow"] * 6), "oversize", max_new_tokens=3),
        gen("what is", max_new_tokens=1),
        chat,
    ]
    assert engine.run("generate", batch) == static.run("generate", batch)
    assert engine.count_tokens(chat) == static.count_tokens(chat)


def test_events_are_ordered_and_join_to_the_text(
    models: tuple[ModelRunner, StreamingGenerator],
) -> None:
    static, engine = models
    recorder = Recorder()
    prompts = ["the cat", "a dog ran", "hello world how", "red green", "what is", "the mat"]
    threads = [
        threading.Thread(target=engine.submit, args=(gen(p, max_new_tokens=10), recorder))
        for p in prompts
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in prompts:
        final = recorder.wait(p)
        check_stream(recorder.events[p])
        assert final.output == static.run("generate", [gen(p, max_new_tokens=10)])[0]
    assert engine.active() == 0


def test_a_short_request_overtakes_a_running_long_one(
    models: tuple[ModelRunner, StreamingGenerator], long_prompt: str
) -> None:
    engine = models[1]
    recorder = Recorder()
    engine.submit(gen(long_prompt, "long", max_new_tokens=LONG), recorder)
    recorder.wait("long", finished=False)  # it is decoding
    engine.submit(gen("the cat", "short", max_new_tokens=2), recorder)
    assert recorder.wait("short").output is not None
    long = recorder.wait("long")
    assert recorder.order == ["short", "long"]
    assert long.output is not None and long.output.tokens_out == LONG
    assert long.output.finish_reason == "length"


def test_cancel_finishes_once_with_cancelled(
    models: tuple[ModelRunner, StreamingGenerator], long_prompt: str
) -> None:
    engine = models[1]
    recorder = Recorder()
    engine.submit(gen(long_prompt, "c", max_new_tokens=LONG), recorder)
    recorder.wait("c", finished=False)
    engine.cancel("c")
    final = recorder.wait("c")
    assert final.output is not None and final.output.finish_reason == "cancelled"
    assert final.output.tokens_out < LONG
    time.sleep(0.2)  # nothing may follow the finished event
    check_stream(recorder.events["c"])
    engine.cancel("c")  # unknown / finished ids are ignored
    assert engine.active() == 0


def test_limits_and_stop_strings_across_deltas(
    models: tuple[ModelRunner, StreamingGenerator],
) -> None:
    static, engine = models
    capped = engine.run("generate", [gen("the cat", max_new_tokens=10_000)])[0]
    assert capped.tokens_out <= LONG
    full = static.run("generate", [gen("red green", max_new_tokens=12)])[0]
    assert full.text is not None and len(full.text.split()) >= 3, full.text
    first, second = full.text.split()[1:3]
    stop = f"{first[-1]} {second[0]}"  # spans two tokens, so two deltas
    recorder = Recorder()
    engine.submit(gen("red green", "s", max_new_tokens=12, stop=(stop,)), recorder)
    final = recorder.wait("s")
    check_stream(recorder.events["s"])
    expected = static.run("generate", [gen("red green", max_new_tokens=12, stop=(stop,))])[0]
    assert final.output == expected and expected.finish_reason == "stop"
    assert final.output.text == full.text[: full.text.index(stop)]


def test_seeded_sampling_matches_static_whatever_the_batch(
    models: tuple[ModelRunner, StreamingGenerator],
) -> None:
    static, engine = models
    seeded = gen("the cat", max_new_tokens=10, temperature=1.0, seed=7)
    alone = engine.run("generate", [seeded])[0]
    assert alone == static.run("generate", [seeded])[0]
    mixed = engine.run("generate", [gen("a dog ran"), seeded, gen("red", temperature=0.5)])
    assert mixed[1] == alone


def test_bad_input_and_bad_callbacks(models: tuple[ModelRunner, StreamingGenerator]) -> None:
    engine = models[1]
    with pytest.raises(InvalidModelInput):
        engine.submit(ModelInput(request_id="empty"), lambda _e: None)
    with pytest.raises(InvalidModelInput):
        engine.run("embed", [gen("x")])

    def broken(event: TokenEvent) -> None:
        raise ValueError("client bug")

    engine.submit(gen("the cat", "broken", max_new_tokens=3), broken)
    assert engine.run("generate", [gen("a dog", max_new_tokens=3)])[0].tokens_out >= 1


def test_a_dead_manager_fails_its_requests_and_is_replaced(
    models: tuple[ModelRunner, StreamingGenerator], long_prompt: str
) -> None:
    static, engine = models
    recorder = Recorder()
    engine.submit(gen(long_prompt, "victim", max_new_tokens=LONG), recorder)
    recorder.wait("victim", finished=False)

    def crash() -> None:
        raise RuntimeError("injected fault")

    engine._manager._generation_step = crash  # type: ignore[attr-defined]  # its next step dies
    final = recorder.wait("victim")
    assert final.error is not None and "injected fault" in final.error and final.output is None
    check_stream(recorder.events["victim"])
    again = gen("the cat", max_new_tokens=5)
    assert engine.run("generate", [again]) == static.run("generate", [again])


# ---- the fake streaming engine ----


def test_fake_streaming_engine_from_the_registry(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text(
        '[[models]]\nname = "f"\nversion = "1"\nkind = "fake"\ntasks = ["generate"]\n'
        'engine = "continuous"\nmax_new_tokens = 4\nfake_delay_s = 0.001\n'
    )
    fake = load_runner(load_registry(path).get("f"), tmp_path)
    assert isinstance(fake, FakeStreamingGenerator) and isinstance(fake, StreamingGenerator)
    recorder = Recorder()
    fake.submit(gen("a b c", "short"), recorder)
    fake.submit(gen("one two three four five", "long", max_new_tokens=10), recorder)
    fake.submit(gen("x y STOP z", "stop", stop=("STOP",)), recorder)
    fake.submit(gen(f"boom {RAISE_MARKER}", "boom"), recorder)
    finals = {rid: recorder.wait(rid) for rid in ("short", "long", "stop", "boom")}
    for rid in finals:
        check_stream(recorder.events[rid])
    assert [e.delta for e in recorder.events["short"]] == ["a", " b", " c", ""]
    summary = {
        rid: (e.output.text, e.output.finish_reason) for rid, e in finals.items() if e.output
    }
    assert summary == {
        "short": ("a b c", "stop"),
        "long": ("one two three four", "length"),  # capped by the spec's max_new_tokens
        "stop": ("x y ", "stop"),
    }
    assert finals["boom"].error is not None and RAISE_MARKER in finals["boom"].error
    assert fake.computed_items == 4 and fake.active() == 0
    fake.close()


def test_fake_streaming_engine_cancel_batch_limit_and_run() -> None:
    spec = fake_spec(max_batch_size=2, max_new_tokens=1000)
    fake = FakeStreamingGenerator(spec, token_delay_s=0.01)
    recorder = Recorder()
    long = " ".join(["w"] * 500)  # 5 s of words: the test is done long before
    for rid in ("a", "b", "c"):
        fake.submit(gen(long, rid), recorder)
    recorder.wait("a", finished=False)
    assert "c" not in recorder.events  # only max_batch_size requests decode at a time
    assert fake.active() == 3
    fake.cancel("a")
    assert recorder.wait("a").output is not None
    assert recorder.events["a"][-1].output.finish_reason == "cancelled"  # type: ignore[union-attr]
    recorder.wait("c", finished=False)  # "a" left, so "c" got its place
    fake.close()
    assert recorder.wait("b").error == "model closed" and recorder.wait("c").error is not None
    fresh = FakeStreamingGenerator(fake_spec(), token_delay_s=0.0)
    out = fresh.run("generate", [gen("hi there", max_new_tokens=1), gen("x")])
    assert [(o.text, o.finish_reason) for o in out] == [("hi", "length"), ("x", "stop")]
    assert fresh.run("embed", [gen("x")])[0].embedding is not None
    with pytest.raises(RuntimeError, match=RAISE_MARKER):
        fresh.run("generate", [gen(RAISE_MARKER)])
    fresh.close()


def test_registry_engine_key(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[[models]]\nname = "e"\nversion = "1"\ntasks = ["embed"]\nsource = "x"\n')
    assert load_registry(path).get("e").engine == "static"
    path.write_text(path.read_text() + 'engine = "continuous"\n')
    with pytest.raises(RegistryError, match="continuous"):
        load_registry(path)
