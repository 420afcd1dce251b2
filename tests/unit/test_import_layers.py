"""Imports run downwards only, and no two parts of the system import each other.

A module may import modules of its own layer and of the layers below it. Each layer
is made of parts (packages or modules); every module of services/ and workers/ must
belong to one, so a new package has to be placed here before it can be imported.
"""

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAYERS = (  # top to bottom
    ("entry points", (
        "workers.cli", "workers.devstack", "workers.dlq", "workers.notifier", "workers.outbox_relay",
        "workers.queue", "workers.saga", "workers.token_expiry", "services.booking.entrypoints",
    )),
    ("consumer runtime", ("workers.common",)),
    ("service layer", ("services.booking.service_layer", "services.notifier.service")),
    ("adapters", ("services.booking.adapters", "services.booking.migrations", "services.notifier.adapters")),
    ("settings", ("services.booking.config", "services.notifier.config")),
    ("domain", ("services.booking.domain", "services.notifier.domain")),
    ("common", ("services.common",)),
)
LAYER_OF = {part: depth for depth, (_, parts) in enumerate(LAYERS) for part in parts}


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for package in ("services", "workers"):
        for path in (root / package).rglob("*.py"):
            name = ".".join(path.relative_to(root).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported(module: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every project module that `module` imports, at any depth of its code."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, or node.level - 1 packages above it
                anchor = package.split(".")[: package.count(".") + 2 - node.level]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` imports the module; `from module import name`, the module.
            names = [base + "." + alias.name if base + "." + alias.name in known else base
                     for alias in node.names]
        else:
            continue
        yield from (name for name in names if name in known)


def part_of(module: str) -> str | None:
    prefixes = (".".join(module.split(".")[:length]) for length in range(module.count(".") + 1, 0, -1))
    return next((prefix for prefix in prefixes if prefix in LAYER_OF), None)


def part_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """Which part imports which (`a -> b` by way of which modules), and the upward imports."""
    known = modules(root)
    edges: dict[str, set[str]] = {}
    upward = []
    for module, path in sorted(known.items()):
        source = part_of(module)
        for target in sorted(set(imported(module, path, known))):
            to = part_of(target)
            if source is None or to is None or source == to:
                continue
            edges.setdefault(source, set()).add(to)
            if LAYER_OF[to] < LAYER_OF[source]:
                upward.append(f"{module} ({LAYERS[LAYER_OF[source]][0]}) imports {target}"
                              f" ({LAYERS[LAYER_OF[to]][0]})")
    return edges, upward


def reachable(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    reach = {part: set(targets) for part, targets in edges.items()}
    for middle, start in itertools.product(list(reach), list(reach)):
        if middle in reach[start]:
            reach[start] |= reach.get(middle, set())
    return reach


def test_every_module_belongs_to_a_declared_part() -> None:
    unplaced = [module for module, path in modules(ROOT).items()
                if part_of(module) is None and path.read_text().strip()]
    assert not unplaced, f"place these in LAYERS: {unplaced}"


def test_no_import_runs_upwards() -> None:
    _, upward = part_graph(ROOT)
    assert not upward, "\n".join(upward)


def test_no_two_parts_import_each_other() -> None:
    reach = reachable(part_graph(ROOT)[0])
    cycles = sorted((a, b) for a in reach for b in reach[a] if a < b and a in reach.get(b, ()))
    assert not cycles, cycles
