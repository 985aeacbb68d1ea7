"""Replay every shared recording with each strategy and print what the fills came to.

The behaviour check of refactors: `python tools/replay_hashes.py > before.json`, change the
code, run it again and compare (`--check before.json` exits 1 on any difference). Each line
is one recording and strategy: fills_sha256, fills, orders, denied and final equity.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TRADEBOT_DATA_DIR", ROOT.parent / "shared" / "data"))
STRATEGIES = ("ema_cross", "quoting")
KEYS = ("fills_sha256", "fills", "orders", "denied", "final_equity", "messages")


def recordings() -> list[Path]:
    """Return every replayable shared recording."""
    found = sorted((DATA / "binance_hftbacktest").glob("*/*.gz"))
    found += sorted((DATA / "cryptofeed").glob("*.ws.*.0"))
    return found


def replay(path: Path, strategy: str) -> dict[str, object]:
    """Replay one recording with one strategy; return the summary's behaviour keys."""
    cmd = [sys.executable, "-m", "tradebot", "replay", str(path), "--json", "--no-progress",
           "--strategy", strategy]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)  # noqa: S603
    if done.returncode != 0:
        return {"rc": done.returncode, "error": _error(done.stderr)}
    summary = json.loads(done.stdout)
    return {k: summary[k] for k in KEYS}


def _error(stderr: str) -> str:
    # The last log event's message, without its timestamp (which differs on every run).
    last = (stderr.strip().splitlines() or [""])[-1]
    try:
        return str(json.loads(last).get("error", last))
    except (ValueError, AttributeError):
        return last


def main() -> int:
    """Print the table as JSON, or compare it with a stored one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, help="a stored table to compare with")
    args = parser.parse_args()
    jobs = [(p, s) for p in recordings() for s in STRATEGIES]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda job: replay(*job), jobs))
    table = {f"{p.relative_to(DATA)} {s}": r for (p, s), r in zip(jobs, results, strict=True)}
    if args.check is None:
        json.dump(table, sys.stdout, indent=1, sort_keys=True)
        print()
        return 0
    stored = json.loads(args.check.read_text())
    differ = sorted(k for k in stored.keys() | table.keys() if stored.get(k) != table.get(k))
    for key in differ:
        print(f"DIFFERS {key}: before {stored.get(key)} now {table.get(key)}")
    print(f"{len(table) - len(differ)} equal, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
