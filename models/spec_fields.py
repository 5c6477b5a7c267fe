"""Typed, self-describing reads of one registry entry: every error names file, entry and key."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn, TypeVar

from models.errors import RegistryError
from models.placement import DEVICE_PATTERN, DEVICE_WORDS

T = TypeVar("T", bound=str)


class EntryReader:
    """Reads keys of one [[models]] table and remembers which ones it consumed."""

    def __init__(self, entry: object, origin: Path, index: int, label: str | None = None) -> None:
        self._origin = origin
        self._label = label or f"[[models]] #{index + 1}"
        if not isinstance(entry, dict):
            self.fail("must be a table")
        self._entry: dict[str, object] = entry
        self._seen: set[str] = set()
        if label is None:
            self.name = self.string("name", required=True)
            self._label = f"model {self.name!r}"
        else:
            self.name = label

    def table(self, key: str) -> EntryReader | None:
        """A reader for the sub-table `key` (e.g. [models.limits]); None when absent."""
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(f"{key} must be a table, got {value!r}")
        return EntryReader(value, self._origin, 0, label=f"{self._label}.{key}")

    def fail(self, problem: str) -> NoReturn:
        raise RegistryError(f"{self._origin}: {self._label}: {problem}")

    def finish(self) -> None:
        """Reject keys nobody read: a typo must not silently fall back to a default."""
        unknown = sorted(set(self._entry) - self._seen)
        if unknown:
            self.fail(f"unknown keys {unknown}")

    def _get(self, key: str) -> object:
        self._seen.add(key)
        return self._entry.get(key)

    def string(self, key: str, *, default: str = "", required: bool = False) -> str:
        value = self._get(key)
        if value is None:
            if required:
                self.fail(f"{key} is required")
            return default
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{key} must be a non-empty string, got {value!r}")
        return value

    def optional_string(self, key: str) -> str | None:
        if self._get(key) is None:
            return None
        return self.string(key)

    def choice(self, key: str, allowed: tuple[T, ...], *, default: T) -> T:
        value = self._get(key)
        if value is None:
            return default
        for option in allowed:
            if value == option:
                return option
        self.fail(f"{key} must be one of {list(allowed)}, got {value!r}")

    def choices(self, key: str, allowed: tuple[T, ...]) -> tuple[T, ...]:
        """A required, non-empty list whose items all come from `allowed`."""
        values = self.str_list(key)
        if not values:
            self.fail(f"{key} must be a non-empty list of {list(allowed)}")
        picked = [next((a for a in allowed if a == v), None) for v in values]
        bad = [v for v, p in zip(values, picked, strict=True) if p is None]
        if bad:
            self.fail(f"{key}: unknown {bad}; allowed {list(allowed)}")
        return tuple(p for p in picked if p is not None)

    def str_list(self, key: str) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(f"{key} must be a list of non-empty strings, got {value!r}")
        if len(set(value)) != len(value):
            self.fail(f"{key} has duplicates: {value!r}")
        return tuple(value)

    def integer(self, key: str, *, default: int, minimum: int) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.fail(f"{key} must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, *, default: float, minimum: float) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
            self.fail(f"{key} must be a number >= {minimum}, got {value!r}")
        return float(value)

    def boolean(self, key: str, *, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.fail(f"{key} must be true or false, got {value!r}")
        return value

    def device(self, key: str, *, default: str) -> str:
        value = self.string(key, default=default)
        if not DEVICE_PATTERN.match(value):
            self.fail(f"{key} must be {DEVICE_WORDS}, got {value!r}")
        return value
