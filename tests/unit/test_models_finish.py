from __future__ import annotations

from collections.abc import Sequence

from models.finish import finish_sequence, first_stop

WORDS = {1: "alpha", 2: "beta", 3: "gamma", 4: "delta", 9: "<eos>"}


def decode(tokens: Sequence[int]) -> str:
    return " ".join(WORDS[t] for t in tokens if t != 9)


def test_length_when_the_limit_is_reached() -> None:
    done = finish_sequence([1, 2, 3, 4], eos_ids={9}, max_new_tokens=3, stops=(), decode=decode)
    assert (done.text, done.tokens_out, done.finish_reason) == ("alpha beta gamma", 3, "length")


def test_eos_stops_and_is_not_counted_or_shown() -> None:
    done = finish_sequence([1, 9, 9, 9], eos_ids={9}, max_new_tokens=8, stops=(), decode=decode)
    assert (done.text, done.tokens_out, done.finish_reason) == ("alpha", 1, "stop")


def test_earliest_stop_string_wins_and_tokens_count_up_to_it() -> None:
    done = finish_sequence(
        [1, 2, 3, 4], eos_ids={9}, max_new_tokens=8, stops=("delta", "beta"), decode=decode
    )
    assert (done.text, done.tokens_out, done.finish_reason) == ("alpha ", 2, "stop")


def test_stop_string_inside_a_token_and_beyond_the_limit() -> None:
    done = finish_sequence([1, 3], eos_ids={9}, max_new_tokens=8, stops=("amm",), decode=decode)
    assert (done.text, done.tokens_out) == ("alpha g", 2)
    late = finish_sequence(
        [1, 2, 3], eos_ids={9}, max_new_tokens=2, stops=("gamma",), decode=decode
    )
    assert (late.text, late.finish_reason) == ("alpha beta", "length")


def test_first_stop_ignores_empty_stops() -> None:
    assert first_stop("abc", ("", "c")) == 2
    assert first_stop("abc", ()) is None
