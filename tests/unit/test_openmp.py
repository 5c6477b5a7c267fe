"""The worker picks OMP_WAIT_POLICY=PASSIVE before torch loads, unless the environment chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("from models.openmp import prefer_passive_waiting as p; "
         "import os; print(p(), os.environ['OMP_WAIT_POLICY'])")


def policy_in_fresh_process(env_policy: str | None, code: str = PROBE) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_policy is not None:
        env["OMP_WAIT_POLICY"] = env_policy
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True, timeout=120)
    return done.stdout.strip()


def test_passive_by_default() -> None:
    assert policy_in_fresh_process(None) == "PASSIVE PASSIVE"


@pytest.mark.parametrize("chosen", ["ACTIVE", "passive"])
def test_an_explicit_policy_wins(chosen: str) -> None:
    assert policy_in_fresh_process(chosen) == f"{chosen} {chosen}"


def test_says_so_when_torch_was_already_loaded() -> None:
    code = ("import torch; from models.openmp import prefer_passive_waiting as p; "
            "import os; print(p(), 'OMP_WAIT_POLICY' in os.environ)")
    assert policy_in_fresh_process(None, code) == "default (torch already loaded) False"
