"""Turning a request's growing list of generated token ids into text deltas (pure, no torch).

Engines report the tokens generated so far (cumulative). Decoding each token on its own breaks
multi-byte characters and the spacing of BPE/SentencePiece merges, so every update decodes the
whole list and emits only the new suffix, holding back:
- a trailing U+FFFD (an incomplete UTF-8 sequence that the next token completes), and
- the last len(longest stop string) - 1 characters, which may be the start of a stop string
  that the next tokens complete; the client must never see text that a stop string cuts off.
The held-back text is flushed when the request finishes, so the deltas always join to the
final text, which equals what `finish.finish_sequence` gives for the same tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from models.base import ModelOutput, TokenEvent
from models.finish import Decode, first_stop

logger = logging.getLogger(__name__)

_BROKEN = "\ufffd"  # what a decoder writes for an incomplete UTF-8 sequence


class TextStream:
    def __init__(
        self, decode: Decode, *, eos_ids: Collection[int], limit: int, stops: Sequence[str]
    ) -> None:
        self._decode = decode
        self._eos_ids = eos_ids
        self._limit = limit
        self._stops = tuple(s for s in stops if s)
        self._hold = max((len(s) for s in self._stops), default=1) - 1
        self._text = ""  # the current text, cut at a stop string once one appears
        self.emitted = ""  # the text already handed out as deltas
        self.tokens_out = 0
        self.finish_reason: str | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def update(self, generated: Sequence[int]) -> str:
        """The text delta after `generated` (all tokens so far). May finish the stream on EOS,
        the token limit or a stop string; updates after that return ""."""
        if self.finished:
            return ""
        kept = list(generated[: self._limit])
        for index, token in enumerate(kept):
            if token in self._eos_ids:
                kept, self.finish_reason = kept[:index], "stop"
                break
        self.tokens_out = len(kept)
        self._text = self._decode(kept)
        cut = first_stop(self._text, self._stops)
        if cut is not None:
            # Streams are updated token by token, so the current token completed the stop
            # string: tokens_out counts it, as finish_sequence does.
            self._text, self.finish_reason = self._text[:cut], "stop"
        elif not self.finished and len(kept) >= self._limit:
            self.finish_reason = "length"
        return self._flush() if self.finished else self._advance()

    def close(self, reason: str) -> str:
        """Finish now (cancelled, or the engine ended the request): flush the held-back text."""
        if self.finished:
            return ""
        self.finish_reason = reason
        return self._flush()

    def _advance(self) -> str:
        safe = self._text.rstrip(_BROKEN)
        safe = safe[: len(safe) - self._hold] if self._hold else safe
        return self._take(safe)

    def _flush(self) -> str:
        return self._take(self._text)

    def _take(self, text: str) -> str:
        # Decoding a longer list only appends for the tokenizers we serve; if one ever rewrote
        # earlier text we cannot take back what was sent, so we wait for text that extends it.
        if len(text) <= len(self.emitted) or not text.startswith(self.emitted):
            return ""
        delta = text[len(self.emitted) :]
        self.emitted = text
        return delta


@dataclass
class StreamRequest:
    """One submitted request of a streaming engine: where its events go and its text so far."""

    request_id: str
    on_event: Callable[[TokenEvent], None]
    stream: TextStream
    tokens_in: int

    def progress(self, delta: str) -> None:
        if delta:  # tokens that add no text yet (held back) are not worth an event
            self._emit(TokenEvent(self.request_id, delta, self.stream.tokens_out))

    def finish(self, delta: str) -> None:
        """The final event; the output's text is exactly the joined deltas."""
        out = ModelOutput(
            text=self.stream.emitted,
            tokens_in=self.tokens_in,
            tokens_out=self.stream.tokens_out,
            finish_reason=self.stream.finish_reason,
        )
        self._emit(TokenEvent(self.request_id, delta, self.stream.tokens_out, True, out))

    def fail(self, error: str, transient: bool = False) -> None:
        self._emit(TokenEvent(self.request_id, "", self.stream.tokens_out, True, error=error,
                              transient=transient))

    def _emit(self, event: TokenEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # a broken callback must not stop every other request's stream
            logger.exception("on_event callback failed for request %s", self.request_id)


class RequestTable:
    """Thread-safe map of a streaming engine's unfinished requests, by engine key (a client's
    request id may repeat: at-least-once delivery can submit the same request twice)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, StreamRequest] = {}

    def __len__(self) -> int:
        with self._lock:
            return len(self._requests)

    def add(self, key: str, request: StreamRequest) -> None:
        with self._lock:
            self._requests[key] = request

    def get(self, key: str) -> StreamRequest | None:
        with self._lock:
            return self._requests.get(key)

    def pop(self, key: str) -> StreamRequest | None:
        with self._lock:
            return self._requests.pop(key, None)

    def snapshot(self) -> list[tuple[str, StreamRequest]]:
        """The unfinished requests, oldest first."""
        with self._lock:
            return list(self._requests.items())

    def keys_for(self, request_id: str) -> list[str]:
        with self._lock:
            return [k for k, r in self._requests.items() if r.request_id == request_id]

    def take_all(self) -> list[tuple[str, StreamRequest]]:
        with self._lock:
            taken = list(self._requests.items())
            self._requests.clear()
        return taken
