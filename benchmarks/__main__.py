"""Run every benchmark: `python -m benchmarks [NAME ...]` (NAME: pipeline, core, feeds, ...).

Each `benchmarks/bench_<name>.py` runs in its own process (clean memory figures, no JIT
state shared) and prints its figures and ratios against the peers measured in the same run.
The machine is shared and noisy: every figure is a median of repeated runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    status = 0
    for name in names:
        print(f"\n=== bench_{name} ===", flush=True)
        result = subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}"],
                                cwd=HERE.parent, check=False)
        status = status or result.returncode
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
