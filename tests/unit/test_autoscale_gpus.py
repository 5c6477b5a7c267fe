"""`streamserve up --gpus`: device enumeration and slot layout with a fake device list, the
per-worker environment, and restarts of workers whose /health fails."""

from __future__ import annotations

import http.server
import itertools
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.autoscale import procs
from streams.autoscale import supervisor as supervisor_module
from streams.autoscale.gpus import GpuInventory, GpuSlots, gpu_slots, visible_gpus
from streams.autoscale.health import HealthWatch, probe_health
from streams.autoscale.procs import WorkerHandle, start_worker, worker_env
from streams.autoscale.supervisor import UNHEALTHY_KILL_S, Supervisor
from streams.autoscale.up import with_gpus
from streams.config import Settings
from streams.errors import ConfigError
from tests.unit.test_autoscale_supervisor import FakeProcess

SMI = "GPU 0: NVIDIA H200 (UUID: GPU-1a)\nGPU 1: NVIDIA H200 (UUID: GPU-2b)\n"
TWO = GpuInventory(("0", "1"), "nvidia-smi -L")
NONE = GpuInventory((), "nvidia-smi -L")


def runner(outputs: dict[str, str]) -> Any:
    """A fake `subprocess.run(...).stdout` by program name; a missing one is not installed."""
    def run(argv: list[str]) -> str:
        name = Path(argv[0]).name
        if name not in outputs:
            raise FileNotFoundError(argv[0])
        return outputs[name]
    return run


def test_enumeration_prefers_the_supervisors_own_cuda_visible_devices() -> None:
    listed = visible_gpus({"CUDA_VISIBLE_DEVICES": "2,3"}, runner({"nvidia-smi": SMI}))
    assert listed.ids == ("2", "3") and "CUDA_VISIBLE_DEVICES='2,3'" in listed.source
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}, runner({})).ids == ()
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1,-1,0"}, runner({})).ids == ("1",)


def test_enumeration_from_nvidia_smi_then_torch_in_a_child() -> None:
    assert visible_gpus({}, runner({"nvidia-smi": SMI})) == TWO
    python = Path(sys.executable).name
    by_torch = visible_gpus({}, runner({python: "3\n"}))
    assert by_torch == GpuInventory(("0", "1", "2"), "torch.cuda.device_count()")
    assert visible_gpus({}, runner({})).ids == ()


def test_slots_one_or_k_workers_per_gpu() -> None:
    slots = gpu_slots("all", 1, lambda: TWO)
    assert slots == GpuSlots(("0", "1")) and slots.workers == 2
    shared = gpu_slots("0,1", 2, lambda: TWO)
    assert shared.workers == 4
    assert [shared.gpu_of(s) for s in range(4)] == ["0", "0", "1", "1"]
    assert "4 worker(s) on GPU 0,1 (2 per GPU" in shared.describe()
    assert gpu_slots("GPU-1a", 1, lambda: TWO).gpus == ("GPU-1a",)  # UUIDs pass as they are


@pytest.mark.parametrize(
    ("gpus", "k", "inventory", "problem"),
    [
        ("all", 1, NONE, r"--gpus all: no GPU is visible here \(nvidia-smi -L lists none\)"),
        ("0", 1, NONE, "no GPU is visible here"),
        ("0,5", 1, TWO, r"GPU 5 not visible here \(visible: 0,1, from nvidia-smi -L\)"),
        ("0,0", 1, TWO, "names a GPU twice.*--workers-per-gpu"),
        ("first", 1, TWO, "wants 'all' or GPU ids"),
        ("", 1, TWO, "wants 'all' or GPU ids"),
        ("all", 0, TWO, "--workers-per-gpu wants a count >= 1"),
    ],
)
def test_bad_gpu_lists_say_why(gpus: str, k: int, inventory: GpuInventory,
                               problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        gpu_slots(gpus, k, lambda: inventory)


def test_gpus_fix_the_count_and_exclude_autoscaling_flags() -> None:
    assert with_gpus("auto", None, None, None, 1) is None
    assert with_gpus("auto", None, None, "all", 2, lambda: TWO) == GpuSlots(("0", "1"), 2)
    for workers, low, high in (("3", None, None), ("auto", 1, None), ("auto", None, 4)):
        with pytest.raises(ConfigError, match="drop --workers/--min/--max"):
            with_gpus(workers, low, high, "all", 1, lambda: TWO)
    with pytest.raises(ConfigError, match="--workers-per-gpu needs --gpus"):
        with_gpus("auto", None, None, None, 2)


def test_each_worker_sees_its_own_gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    settings = Settings(data_dir=tmp_path)
    assert worker_env(settings, "w-0", 7000, tmp_path, "1")["CUDA_VISIBLE_DEVICES"] == "1"
    assert worker_env(settings, "w-0", 7000, tmp_path)["CUDA_VISIBLE_DEVICES"] == "0,1"
    launched: list[dict[str, Any]] = []

    class Recorder:
        pid = 4242

        def __init__(self, argv: list[str], **kwargs: Any) -> None:
            launched.append({"argv": argv, **kwargs})

    monkeypatch.setattr(procs.subprocess, "Popen", Recorder)
    ports = iter([7001, 7001, 7002])
    monkeypatch.setattr(procs, "free_port", lambda: next(ports))
    worker = start_worker(settings, 3, "1", taken_ports={7001})
    assert worker.web_port == 7002  # 7001 is another worker's, even if not bound yet
    assert (worker.worker_id, worker.gpu) == ("worker-3", "1")
    env = launched[0]["env"]
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["STREAMSERVE_WEB_PORT"] == "7002"
    assert env["STREAMSERVE_WORKER_ID"] == "worker-3"
    assert launched[0]["argv"][-2:] == ["streams.cli", "worker"]


class Health:
    """What each worker's /health answers, by web port (True = 200)."""

    def __init__(self) -> None:
        self.ok: dict[int, bool] = {}

    async def probe(self, url: str) -> bool:
        return self.ok.get(int(url.rsplit(":", 1)[1].split("/")[0]), False)


@pytest.fixture
def gpu_supervisor(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Supervisor]:
    ports = itertools.count(7100)

    def fake_start(settings: Settings, slot: int, gpu: str | None = None,
                   taken_ports: Any = ()) -> WorkerHandle:
        process: Any = FakeProcess()
        return WorkerHandle(slot, f"worker-{slot}", "127.0.0.1", next(ports), tmp_path,
                            process, gpu=gpu)

    monkeypatch.setattr(supervisor_module, "start_worker", fake_start)
    health = Health()
    lines: list[str] = []
    sup = Supervisor(Settings(data_dir=tmp_path), None, say=lines.append,
                     gpus=GpuSlots(("0", "1"), 2), health=HealthWatch(3, 60.0),
                     probe=health.probe)
    sup.lines, sup.answers = lines, health  # type: ignore[attr-defined]
    yield sup


async def test_one_slot_per_gpu_with_distinct_ids_and_ports(gpu_supervisor: Supervisor) -> None:
    assert gpu_supervisor.fixed == 4
    gpu_supervisor._scale_to(4, "start", 0)
    workers = [gpu_supervisor.workers[s] for s in range(4)]
    assert [w.gpu for w in workers] == ["0", "0", "1", "1"]
    assert len({w.worker_id for w in workers}) == len({w.web_port for w in workers}) == 4


async def test_a_worker_failing_health_is_restarted(gpu_supervisor: Supervisor) -> None:
    sup, health = gpu_supervisor, gpu_supervisor.answers  # type: ignore[attr-defined]
    sup._scale_to(4, "start", 0)
    health.ok = {w.web_port: True for w in sup.workers.values()}
    await sup._check_health()
    sick = sup.workers[2]
    health.ok[sick.web_port] = False  # answers 503 / times out from now on
    for _ in range(2):
        await sup._check_health()
    assert not sick.stopping  # two failures: not yet
    await sup._check_health()
    assert sick.stopping and sick.process.signals  # SIGTERM on the third
    assert "worker worker-2 (GPU 1) failed /health 3 polls in a row" in sup.lines[-1]  # type: ignore[attr-defined]
    sick.process.returncode = -15  # type: ignore[attr-defined]
    sup._reap()  # the crash path: restart scheduled (no backoff the first time)
    sup._reap()
    again = sup.workers[2]
    assert again is not sick and again.gpu == "1"  # the same slot, the same GPU
    assert all(not w.stopping for s, w in sup.workers.items() if s != 2)


async def test_a_worker_still_loading_is_not_judged_until_its_grace_ends(
        gpu_supervisor: Supervisor) -> None:
    sup = gpu_supervisor
    sup._scale_to(4, "start", 0)
    for _ in range(5):  # never answered, younger than the 60 s grace: loading its models
        await sup._check_health()
    assert not any(w.stopping for w in sup.workers.values())
    for worker in sup.workers.values():
        worker.started_at -= 61.0
    for _ in range(3):
        await sup._check_health()
    assert all(w.stopping for w in sup.workers.values())


async def test_a_worker_ignoring_sigterm_is_killed(gpu_supervisor: Supervisor) -> None:
    sup = gpu_supervisor
    sup._scale_to(1, "start", 0)
    worker = sup.workers[0]
    worker.started_at -= 120.0
    for _ in range(3):
        await sup._check_health()
    assert worker.stopping and not worker.exited
    sup._unhealthy[worker.key] -= UNHEALTHY_KILL_S + 1  # it ignored SIGTERM that long
    await sup._check_health()
    assert worker.process.returncode == -9  # type: ignore[attr-defined]


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


async def test_the_real_probe_against_a_real_http_server() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/health"
    try:
        assert await probe_health(url) is True
        _Handler.status = 503
        assert await probe_health(url) is False
    finally:
        server.shutdown()
        server.server_close()
        _Handler.status = 200
    assert await probe_health(url, timeout_s=0.5) is False  # nobody listens any more


def test_the_supervisor_process_never_imports_torch() -> None:
    import subprocess

    code = ("import sys, streams.autoscale.up, streams.autoscale.gpus; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])
    assert done.stdout.strip() == "[]"
