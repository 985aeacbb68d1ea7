"""The systemd unit passes `systemd-analyze verify` and carries the settings DESIGN.md asks for."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

UNIT = REPO / "tradebot.service"
REQUIRED = [
    "Type=notify", "NotifyAccess=main", "Restart=on-failure", "RestartPreventExitStatus=78",
    "RestartPreventExitStatus=75",
    "WatchdogSec=30s", "DynamicUser=yes", "StateDirectory=tradebot", "CacheDirectory=tradebot",
    "ConfigurationDirectory=tradebot", "Environment=NUMBA_CACHE_DIR=%C/tradebot/numba",
    "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes",
    "NoNewPrivileges=yes", "CapabilityBoundingSet=", "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "SystemCallFilter=@system-service", "SystemCallArchitectures=native",
]


def test_unit_has_the_designed_settings() -> None:
    lines = {line.strip() for line in UNIT.read_text().splitlines()}
    missing = [r for r in REQUIRED if r not in lines]
    assert not missing
    assert not any(line.startswith("MemoryDenyWriteExecute=yes") for line in lines)
    unit_section = UNIT.read_text().split("[Service]")[0]
    assert "StartLimitIntervalSec=" in unit_section and "StartLimitBurst=" in unit_section


def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # Point ExecStart at this checkout's console script so verify can check it exists.
    exe = Path(sys.executable).with_name("tradebot")
    unit = tmp_path / "tradebot.service"
    unit.write_text(UNIT.read_text().replace("/opt/tradebot/.venv/bin/tradebot", str(exe)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
