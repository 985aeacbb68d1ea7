"""The daemon warms only the kernels it calls (core/warmup.py DAEMON_MODULES): prove that no
kernel is compiled or loaded after warm-up while every venue replays with every strategy."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, data_dir, data_file


def test_no_kernel_compiles_after_the_daemon_warm_up() -> None:
    data_file("cryptofeed/OKX.ws.1.0")  # skips with a reason when the recordings are absent
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.warm_probe", str(data_dir())], cwd=REPO,
        capture_output=True, text=True, timeout=900, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    late = json.loads(result.stdout.strip().splitlines()[-1])
    assert late == [], f"compiled after warm-up (add their module to DAEMON_MODULES): {late}"
