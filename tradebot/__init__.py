"""tradebot: a paper-trading daemon for crypto markets."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__version__ = "0.1.0"


def _key_numba_cache() -> None:
    """Point numba's cache at a directory keyed by the kernels' source.

    numba invalidates a cached kernel only when its own file changes, but the kernels inline
    helpers from other files of `tradebot/core`: an edit or upgrade there would otherwise load
    stale, silently wrong machine code. Keying the directory on a hash of every core source
    (and the numba version) makes any change a clean recompile. Runs before any kernel is
    compiled (this is the package's first module); `NUMBA_CACHE_DIR` (systemd sets it) is the
    base.
    """
    core = Path(__file__).with_name("core")
    digest = hashlib.sha256()
    for path in sorted(core.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    try:
        from importlib.metadata import version

        digest.update(version("numba").encode())
    except Exception:  # noqa: S110 - numba not installed: nothing to key
        pass
    key = digest.hexdigest()[:16]
    base = os.environ.get("NUMBA_CACHE_DIR", "")
    if Path(base).name == key:
        return  # already keyed (a child process inherits its parent's directory)
    if not base:
        cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        base = str(Path(cache_home) / "tradebot" / "numba")
    os.environ["NUMBA_CACHE_DIR"] = str(Path(base) / key)
    numba = sys.modules.get("numba")
    if numba is not None:
        # Imported first (a notebook, a benchmark importing a peer): numba read its config
        # already; kernels decorated from here on look the directory up there.
        numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]


_key_numba_cache()
