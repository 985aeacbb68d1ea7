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
    "events": 0.5,
    "bus": 1, "config": 1, "log": 1,
    # The L2 book (OrderBook, its read-only BookView) sits below every component that reads it
    # (feeds sync it; execution, features and strategies read it); it needs only core and domain.
    "book": 1,
    "feeds": 2, "strategies": 2, "risk": 2, "execution": 2, "portfolio": 2, "store": 2,
    "features": 2,
    "server": 3, "systemd": 3,
    "app": 4,
    "cli": 5, "features_cli": 5, "__main__": 5,
}
PEERS = {"feeds", "strategies", "risk", "execution", "portfolio", "store", "features"}


def top(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else "__init__"


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
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
