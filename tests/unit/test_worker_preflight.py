"""Start-up checks of the worker that need no broker: the chDB claim and the triton guard."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import Settings
from streams.errors import ConfigError
from streams.worker.preflight import claim_chdb_path

ROOT = Path(__file__).resolve().parents[2]


def test_a_second_worker_on_one_chdb_path_is_refused_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = claim_chdb_path(settings, "worker-a")
    assert first is not None
    try:
        # flock conflicts between two open files even inside one process.
        with pytest.raises(ConfigError) as refused:
            claim_chdb_path(settings, "worker-b")
        message = str(refused.value)
        assert f"{tmp_path / 'chdb'} belongs to worker worker-a (pid " in message
        assert "STREAMSERVE_DATA_DIR" in message and "streamserve up --workers N" in message
    finally:
        first.close()
    again = claim_chdb_path(settings, "worker-b")  # released with its holder
    assert again is not None
    again.close()


def test_other_paths_and_servers_need_no_claim(tmp_path: Path) -> None:
    first = claim_chdb_path(Settings(data_dir=tmp_path / "one"), "a")
    second = claim_chdb_path(Settings(data_dir=tmp_path / "two"), "b")
    assert first is not None and second is not None
    first.close()
    second.close()
    assert claim_chdb_path(Settings(data_dir=tmp_path, request_log=False), "c") is None
    assert claim_chdb_path(Settings(data_dir=tmp_path,
                                    clickhouse_url="http://127.0.0.1:8123"), "d") is None


def _sees_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


TRITON_CHECK = """
import sys
from models.triton_guard import keep_triton_unloaded
blocked = keep_triton_unloaded(sys.argv[1].split(","))
import torch._dynamo  # what transformers' masking utilities import
from torch.utils._triton import has_triton_package
print(blocked, has_triton_package(), type(sys.modules.get("triton")).__name__)
"""


@pytest.mark.parametrize(("devices", "expected"), [
    ("cpu,cpu", "True False NoneType"),
    ("cpu,cuda:0", "False True module"),
    # "auto" is what the shipped registry says: the CPU here unless torch sees a GPU.
    ("auto,cpu", "True False NoneType" if not _sees_cuda() else "False True module"),
])
def test_triton_stays_unloaded_only_when_every_model_runs_on_the_cpu(
        devices: str, expected: str) -> None:
    if importlib.util.find_spec("triton") is None:  # found, not imported (it would leak here)
        pytest.skip("triton is not installed: nothing to keep out")
    done = subprocess.run([sys.executable, "-c", TRITON_CHECK, devices], cwd=ROOT,
                          capture_output=True, text=True, timeout=180, check=True)
    assert done.stdout.split("\n")[-2] == expected
    assert "nanobind" not in done.stderr or expected.startswith("False")
