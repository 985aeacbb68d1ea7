"""The dependency direction of DESIGN.md, enforced by parsing imports."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "tradebot"

# Lower number = lower layer; a module may import only from layers below its own, and the
# middle layer's packages (feeds, strategies, ...) not from each other: they talk over the bus.
# DESIGN.md lists core, domain, events, clock and errors as importing nothing of tradebot;
# events is the one exception (it needs the domain's ids and enums), so it sits half a layer up.
LAYERS = {
    "core": 0, "domain": 0, "clock": 0, "errors": 0,
    # The order record (spec, order, state, ids) imports only the domain and is carried by
    # events, so it sits between them.
    "order": 0.25,
    "events": 0.5,
    "bus": 1, "config": 1, "log": 1, "lifecycle": 1,
    # The L2 book (OrderBook, its read-only BookView) sits below every component that reads it
    # (feeds sync it; execution, features and strategies read it); it needs only core and domain.
    "book": 1,
    "feeds": 2, "strategies": 2, "risk": 2, "execution": 2, "portfolio": 2, "store": 2,
    "features": 2,
    # health (readiness, status, watchdog) and summary (what a run did) read the components.
    # recovery rebuilds the portfolio and open orders from the store (it joins three peers).
    "server": 3, "systemd": 3, "health": 3, "summary": 3, "recovery": 3,
    "app": 4,
    "cli": 5, "__main__": 5,
}
PEERS = {"feeds", "strategies", "risk", "execution", "portfolio", "store", "features"}


def top(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def _absolute(node: ast.ImportFrom, package: str) -> str:
    # `from . import x` in tradebot/a/b.py names tradebot.a; each further dot goes one up.
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _is_module(name: str) -> bool:
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def imports(path: Path) -> set[str]:
    """Return the tradebot modules `path` imports: absolute, relative, `from tradebot import x`."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = ".".join(parts if path.name == "__init__.py" else parts[:-1])
    return imports_of(path.read_text(), package)


def imports_of(source: str, package: str) -> set[str]:
    """Return the tradebot modules a module of `package` with this source imports."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(node, package) if node.level else node.module or ""
            # `from tradebot import clock` imports the module tradebot.clock; `from tradebot
            # import __version__` imports the package itself.
            names = [f"{base}.{alias.name}" for alias in node.names]
            found.update(n for n in names if _is_module(n))
            if not all(_is_module(n) for n in names):
                found.add(base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "tradebot" or m.startswith("tradebot.")}


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out.append((".".join(rel.parts), path))
    return out


def test_every_package_is_assigned_a_layer() -> None:
    unknown = {top(name) for name, _ in modules()} - set(LAYERS) - {"__init__"}
    assert not unknown, f"add {unknown} to LAYERS (and DESIGN.md)"


def test_imports_point_down_the_layers_only() -> None:
    violations = []
    for name, path in modules():
        mine = top(name)
        if mine == "__init__":
            continue
        for target in imports(path):
            theirs = top(target)
            if theirs in ("__init__", mine):
                continue
            if LAYERS[theirs] > LAYERS[mine] or (
                    LAYERS[theirs] == LAYERS[mine] and (mine in PEERS or theirs in PEERS
                                                        or LAYERS[mine] == 0)):
                violations.append(f"{name} imports {target}")
    assert not violations, "\n".join(violations)


def test_core_imports_only_numpy_numba_and_itself() -> None:
    # Pure stdlib for layout descriptions is fine; nothing that does I/O, logging or time.
    allowed = {"numpy", "numba", "math", "__future__", "importlib", "dataclasses", "typing",
               "enum", "collections"}
    for name, path in modules():
        if not name.startswith("tradebot.core"):
            continue
        outside = {m for m in imports(path) if not m.startswith("tradebot.core")}
        assert not outside, f"{name} imports {outside}"
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            else:
                continue
            for target in targets:
                ok = target.split(".")[0] in allowed or target.startswith("tradebot.core")
                assert ok, f"{name} imports {target}"


def test_relative_and_package_imports_are_resolved() -> None:
    source = ("from . import paper\nfrom .. import app\nfrom ..risk.rules import Rule\n"
              "from tradebot import clock, __version__\nimport tradebot.bus\n")
    assert imports_of(source, "tradebot.execution") == {
        "tradebot.execution.paper", "tradebot.app", "tradebot.risk.rules", "tradebot.clock",
        "tradebot", "tradebot.bus"}


# What reads the system clock: only clock.py may (STYLE.md rule 3). Parsing a timestamp
# (time.strptime, datetime.fromisoformat) reads no clock and is allowed anywhere.
CLOCK_READS = {
    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "perf_counter_ns",
             "process_time", "process_time_ns", "thread_time", "thread_time_ns"},
    "datetime": {"now", "utcnow", "today"},
    "date": {"today"},
}


def clock_reads(source: str) -> list[str]:
    """Return the clock reads in a module's source: `time.time()`, `datetime.now()`, ..."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("gmtime", "localtime", "ctime") and not node.args):
            found.append(f"{node.func.attr}()")  # without a timestamp: now
        if isinstance(node, ast.ImportFrom) and node.module in ("time", "datetime"):
            found += [f"from {node.module} import {a.name}" for a in node.names
                      if a.name in CLOCK_READS.get(node.module, set())]
        elif isinstance(node, ast.Attribute):
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else (
                owner.attr if isinstance(owner, ast.Attribute) else "")
            if node.attr in CLOCK_READS.get(name, set()):
                found.append(f"{name}.{node.attr}")
            elif node.attr == "time" and name.endswith("loop"):
                found.append(f"{name}.time")  # asyncio's loop.time()
    return found


def test_only_clock_reads_the_system_clock() -> None:
    readers = {name: reads for name, path in modules() if name != "tradebot.clock"
               and (reads := clock_reads(path.read_text()))}
    assert not readers, readers


def test_clock_reads_are_detected() -> None:
    source = ("import time\nfrom datetime import datetime\nfrom time import perf_counter_ns\n"
              "a = time.monotonic()\nb = datetime.now()\nc = loop.time()\n"
              "d = time.strptime('2024', '%Y')\ne = datetime.fromisoformat('2024-01-01')\n"
              "f = time.gmtime(0)\ng = time.gmtime()\n")
    assert sorted(clock_reads(source)) == sorted([
        "from time import perf_counter_ns", "time.monotonic", "datetime.now", "loop.time",
        "gmtime()"])
