"""A separate virtual environment for the Quix Streams contender (`python -m bench.quix_env`).

Why not the project venv: quixstreams 3.28 requires `pydantic<2.14` and `pydantic-settings<2.16`
while the project pins pydantic-settings 2.16.3 (and has pydantic 2.14.x). Installing it there
would downgrade a pinned package. So it lives in `.cache/bench-quix/venv` (git-ignored), built
with every package the two environments share constrained to the project venv's versions (only
the pydantic trio differs), and a `.pth` file appends the project venv's site-packages and the
repository root after its own, so torch, transformers, fastavro and the `streams`/`models`
packages are the very same files (no second torch is installed).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUIX_VENV = ROOT / ".cache" / "bench-quix" / "venv"
QUIX_SPEC = "quixstreams==3.28.1"
# Packages the quix venv may hold in other versions than the project venv (quixstreams' caps).
_UNCONSTRAINED = {"pydantic", "pydantic-core", "pydantic-settings"}


def quix_python() -> Path:
    return QUIX_VENV / "bin" / "python"


def quix_version() -> str | None:
    """quixstreams' version in the quix venv (None: no usable venv). Imports only quixstreams
    and the shared `streams` codec, not torch, so the check stays cheap."""
    if not quix_python().exists():
        return None
    code = "import quixstreams, streams.wire.codec; print(quixstreams.__version__)"
    probe = subprocess.run([str(quix_python()), "-c", code], capture_output=True, text=True,
                           check=False)
    return probe.stdout.strip() or None if probe.returncode == 0 else None


def quix_available() -> bool:
    return quix_version() is not None


def _site_packages(python: Path) -> str:
    code = "import sysconfig; print(sysconfig.get_path('purelib'))"
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def build(progress: bool = True) -> Path:
    """Create (or update) the quix venv; returns its python."""
    if not quix_python().exists():
        venv.EnvBuilder(with_pip=True, clear=False).create(QUIX_VENV)
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    constraints = [line for line in frozen if "==" in line
                   and line.split("==")[0].lower().replace("_", "-") not in _UNCONSTRAINED]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write("\n".join(constraints) + "\n")
    quiet = [] if progress else ["-q"]
    subprocess.run([str(quix_python()), "-m", "pip", "install", *quiet, QUIX_SPEC,
                    "-c", handle.name], check=True)
    own = _site_packages(quix_python())
    shared = _site_packages(Path(sys.executable))
    # Appended after the venv's own site-packages: its pydantic wins, the rest is shared.
    (Path(own) / "zz_streamserve_shared.pth").write_text(
        f"import site; site.addsitedir({shared!r})\n{ROOT}\n")
    return quix_python()


if __name__ == "__main__":
    print(f"quix venv: {build()}")
    print("usable:", quix_available())
