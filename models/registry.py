"""The served models, read from a TOML registry (`registry.toml` next to this module by default).

Parsing only: nothing here imports torch or the model packages, so the service can validate its
registry (and tests can use fake entries) without the model runtime.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from models.base import TASKS, Task
from models.errors import RegistryError, UnknownModel
from models.limits import FailurePolicy, RequestLimits, read_failure_policy, read_limits
from models.placement import DTYPES, FALLBACKS, DType, Fallback
from models.spec_fields import EntryReader

Kind = Literal["causal_lm", "encoder", "fake"]
Format = Literal["safetensors", "gguf"]
# "static": micro-batches around `generate`; "continuous": one continuous-batching engine that
# streams tokens (models/continuous.py, or the fake streaming engine for kind = "fake").
Engine = Literal["static", "continuous"]

_FAKE_FAIL = re.compile(r"^(none|always|transient:\d+)$")
_PACKAGE_SOURCE = re.compile(r"^package:[A-Za-z_][A-Za-z0-9_]*(/.+)?$")
DEFAULT_REGISTRY = Path(__file__).with_name("registry.toml")
KINDS: tuple[Kind, ...] = ("causal_lm", "encoder", "fake")
FORMATS: tuple[Format, ...] = ("safetensors", "gguf")
ENGINES: tuple[Engine, ...] = ("static", "continuous")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    version: str
    tasks: tuple[Task, ...]
    kind: Kind
    source: str | None  # "package:<import name>[/sub/path]" or a path; None only for fakes
    format: Format = "safetensors"
    # Where and how precisely it runs, resolved on the machine at load (models/placement.py).
    dtype: DType = "auto"  # auto: bfloat16 on a GPU that has it, float32 on the CPU
    device: str = "cpu"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
    device_fallback: Fallback = "none"  # CUDA asked for, none visible: "cpu" runs there
    engine: Engine = "static"  # how generate runs (see Engine)
    max_batch_size: int = 8
    max_input_tokens: int = 512
    max_new_tokens: int = 0  # cap for generate; 0 for models that do not generate
    default: bool = False
    # Share of the requests that name no version. When any version of a name has weight > 0,
    # such requests are split across versions by weight (canary); otherwise the default takes all.
    weight: float = 0.0
    labels: tuple[str, ...] = ()  # zero-shot labels used when a classify request brings none
    label_template: str = "{}"  # how a label is phrased before it is embedded
    classify_scale: float = 20.0  # cosine similarities are multiplied by this before the softmax
    # Request caps checked before any model work, and what to do when the model fails.
    limits: RequestLimits = field(default_factory=RequestLimits)
    failure: FailurePolicy = field(default_factory=FailurePolicy)
    fake_delay_s: float = 0.0  # fake runners sleep this long per batch to simulate compute
    fake_embedding_dim: int = 16
    # Fake failure modes for tests: "none", "always", "transient:N" (the first N batches raise
    # a transient error); and a path: while that file exists every batch fails.
    fake_fail: str = "none"
    fake_fail_while: str | None = None
    origin: Path | None = None  # the registry file, for relative sources and error messages

    @property
    def key(self) -> str:
        return f"{self.name}:{self.version}"


class Registry:
    """Model specs by name and version; one default version per name."""

    def __init__(self, specs: list[ModelSpec]) -> None:
        self._by_name: dict[str, dict[str, ModelSpec]] = {}
        for spec in specs:
            versions = self._by_name.setdefault(spec.name, {})
            if spec.version in versions:
                raise RegistryError(f"{_where(spec)}: version {spec.version!r} is declared twice")
            versions[spec.version] = spec
        self._defaults = {name: _pick_default(v) for name, v in self._by_name.items()}

    def names(self) -> list[str]:
        return sorted(self._by_name)

    def versions(self, name: str) -> list[str]:
        return sorted(self._versions_of(name))

    def get(self, name: str, version: str | None = None) -> ModelSpec:
        """The spec of `name` at `version` (None = the default version)."""
        versions = self._versions_of(name)
        if version is None:
            return self._defaults[name]
        if version not in versions:
            known = ", ".join(sorted(versions))
            raise UnknownModel(f"model {name!r} has no version {version!r} (served: {known})")
        return versions[version]

    def defaults(self) -> list[ModelSpec]:
        """The default version of every name, sorted by name."""
        return [self._defaults[name] for name in self.names()]

    def __iter__(self) -> Iterator[ModelSpec]:
        for name in self.names():
            yield from (self._by_name[name][v] for v in sorted(self._by_name[name]))

    def _versions_of(self, name: str) -> dict[str, ModelSpec]:
        if name not in self._by_name:
            known = ", ".join(self.names()) or "none"
            raise UnknownModel(f"unknown model {name!r} (served: {known})")
        return self._by_name[name]


def load_registry(path: Path | None = None) -> Registry:
    """Read and validate a registry file; every error names the file and the entry."""
    path = DEFAULT_REGISTRY if path is None else path
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the model registry: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from exc
    extra = set(data) - {"models"}
    if extra:
        raise RegistryError(f"{path}: unknown top-level keys {sorted(extra)}; expected [[models]]")
    entries = data.get("models")
    if not isinstance(entries, list) or not entries:
        raise RegistryError(f"{path}: no [[models]] entries")
    return Registry([parse_entry(entry, path, index) for index, entry in enumerate(entries)])


def parse_entry(entry: object, origin: Path, index: int = 0) -> ModelSpec:
    """One [[models]] table → a validated `ModelSpec`."""
    r = EntryReader(entry, origin, index)
    tasks = r.choices("tasks", TASKS)
    spec = ModelSpec(
        name=r.name,
        version=r.string("version", required=True),
        tasks=tasks,
        kind=r.choice("kind", KINDS, default=_kind_for(tasks)),
        source=r.optional_string("source"),
        format=r.choice("format", FORMATS, default="safetensors"),
        dtype=r.choice("dtype", DTYPES, default="auto"),
        device=r.device("device", default="cpu"),
        device_fallback=r.choice("device_fallback", FALLBACKS, default="none"),
        engine=r.choice("engine", ENGINES, default="static"),
        max_batch_size=r.integer("max_batch_size", default=8, minimum=1),
        max_input_tokens=r.integer("max_input_tokens", default=512, minimum=1),
        max_new_tokens=r.integer("max_new_tokens", default=0, minimum=0),
        default=r.boolean("default", default=False),
        weight=r.number("weight", default=0.0, minimum=0.0),
        labels=r.str_list("labels"),
        label_template=r.string("label_template", default="{}"),
        classify_scale=r.number("classify_scale", default=20.0, minimum=0.0),
        limits=read_limits(r),
        failure=read_failure_policy(r),
        fake_delay_s=r.number("fake_delay_s", default=0.0, minimum=0.0),
        fake_embedding_dim=r.integer("fake_embedding_dim", default=16, minimum=1),
        fake_fail=r.string("fake_fail", default="none"),
        fake_fail_while=r.optional_string("fake_fail_while"),
        origin=origin,
    )
    r.finish()
    _check_consistency(spec, r)
    return spec


def _kind_for(tasks: tuple[Task, ...]) -> Kind:
    return "causal_lm" if "generate" in tasks else "encoder"


def _check_consistency(spec: ModelSpec, r: EntryReader) -> None:
    if spec.kind != "fake" and spec.source is None:
        r.fail("source is required (package:<name>[/path] or a path)")
    source = spec.source or ""
    if source.startswith("package:") and not _PACKAGE_SOURCE.match(source):
        r.fail(f"source {spec.source!r} must look like package:<import name>[/<path>]")
    if spec.kind == "encoder" and "generate" in spec.tasks:
        r.fail("an encoder cannot 'generate'; use kind = 'causal_lm'")
    if spec.kind == "causal_lm" and set(spec.tasks) != {"generate"}:
        r.fail("a causal_lm serves only tasks = ['generate']")
    if "generate" in spec.tasks and spec.max_new_tokens < 1:
        r.fail("max_new_tokens must be >= 1 for a model that generates")
    if spec.engine == "continuous" and "generate" not in spec.tasks:
        r.fail("engine 'continuous' is for models that generate")
    if spec.format == "gguf" and spec.kind != "causal_lm":
        r.fail("format 'gguf' is supported for causal_lm models only")
    if "{}" not in spec.label_template:
        r.fail("label_template must contain '{}' where the label goes")
    if not _FAKE_FAIL.match(spec.fake_fail):
        r.fail(f"fake_fail must be 'none', 'always' or 'transient:N', got {spec.fake_fail!r}")


def _pick_default(versions: dict[str, ModelSpec]) -> ModelSpec:
    defaults = [s for s in versions.values() if s.default]
    if len(defaults) > 1:
        names = ", ".join(sorted(s.version for s in defaults))
        raise RegistryError(f"{_where(defaults[0])}: several default versions ({names})")
    if defaults:
        return defaults[0]
    if len(versions) == 1:
        return next(iter(versions.values()))
    spec = next(iter(versions.values()))
    raise RegistryError(f"{_where(spec)}: several versions and none has default = true")


def _where(spec: ModelSpec) -> str:
    return f"{spec.origin or '<registry>'}: model {spec.name!r}"
