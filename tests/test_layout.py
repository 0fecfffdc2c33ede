"""The package's shape: imports run one way, and every work is cited by its authors.

Imports are read from the source (module level, inside functions and under
TYPE_CHECKING alike), so a cycle or an arrow back up fails here before it can
bite at run time.
"""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "synthoct_bench"

#: layers from the bottom up: a module may import its own layer and the ones below
LAYERS: tuple[tuple[str, ...], ...] = (
    (
        "synthoct_bench.atomic", "synthoct_bench.rng", "synthoct_bench.stats",
        "synthoct_bench.extras", "synthoct_bench.paper", "synthoct_bench.ranks",
        "synthoct_bench.references", "synthoct_bench.lazy", "synthoct_bench.latent",
        "synthoct_bench.checkpoint", "synthoct_bench.augment", "synthoct_bench.resources",
        "synthoct_bench.devices", "synthoct_bench.run_folder",
    ),
    ("synthoct_bench.nlme", "synthoct_bench.generators"),
    ("synthoct_bench.dataset",),
    ("synthoct_bench.scoring", "synthoct_bench.baselines", "synthoct_bench.reproduce"),
    ("synthoct_bench.demo",),
    ("synthoct_bench.commands", "synthoct_bench.cli"),
)  # fmt: skip


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The module file an imported dotted name lives in (the longest known prefix)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        candidate = ".".join(parts[:k])
        if candidate in modules:
            return candidate
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports, anywhere in its source."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # ``from package import submodule`` imports the submodule; any other name
                # comes from the module itself
                names = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                    else node.module
                    for a in node.names
                ]  # fmt: skip
            for imported in names:
                if imported.startswith("synthoct_bench"):
                    target = _target(imported, modules)
                    if target and target != name:
                        edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(module: str) -> int | None:
    if module == "synthoct_bench":  # the root: __version__ and lazy names, nothing imported
        return 0
    for k, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return k
    return None


def test_the_import_graph_has_no_cycle():
    assert _cycles(import_graph()) == []


def test_a_cycle_would_be_found():
    """The checker itself: a two-module loop and a three-module loop are reported."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]


def test_imports_run_one_way():
    """generators and nlme below dataset, dataset below scoring and baselines, commands on
    top: no module imports from a layer above its own."""
    graph = import_graph()
    upward = []
    for module, targets in graph.items():
        here = _layer(module)
        assert here is not None, f"{module} is in no layer of LAYERS; add it where it belongs"
        for target in targets:
            there = _layer(target)
            if there is not None and there > here:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_generators_and_nlme_do_not_import_each_other_upward():
    """Within the bottom half: nlme never needs an image generator, and no generator needs
    the NLME model."""
    graph = import_graph()
    crossing = [
        f"{m} -> {t}"
        for m, targets in graph.items()
        for t in targets
        if (m.startswith("synthoct_bench.nlme") and t.startswith("synthoct_bench.generators"))
        or (m.startswith("synthoct_bench.generators") and t.startswith("synthoct_bench.nlme"))
    ]
    assert crossing == []


def test_each_generator_family_has_a_house():
    """One package per family, its model, training and cost apart."""
    generators = PACKAGE / "generators"
    for family, files in {
        "phantom": ("generator.py", "render.py"),
        "vae": ("base.py", "paper.py", "small.py", "generator.py", "training.py", "run.py",
                "sweep.py", "data.py"),
        "vae/objectives": ("base.py", "beta.py", "standard.py", "tcvae.py", "iwae.py",
                           "infovae.py", "logcosh.py"),
        "diffusion": ("pipeline.py", "training.py", "cost.py"),
        "metrics": ("disentanglement.py", "latent_selection.py", "conditioning.py"),
    }.items():  # fmt: skip
        for name in ("__init__.py", *files):
            assert (generators / family / name).is_file(), f"generators/{family}/{name}"
    loose = sorted(p.name for p in generators.glob("*.py"))
    assert loose == ["__init__.py", "base.py", "traversal.py"]


# ---- citations ------------------------------------------------------------------------------

#: an internal file label of a cited work, which no user has seen (built so this file
#: does not match itself)
_LABEL = re.compile(
    "seed" + r"(?:[ _-]|\s*\n\s*#?\s*)?0{1,2}[0-4]\b|" + "SEED" + r"00[0-4]", re.IGNORECASE
)


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    suffixes = {".py", ".md", ".cff", ".toml", ".sh", ".txt", ".cfg", ".yaml", ".yml"}
    return [ROOT / f for f in out if Path(f).suffix in suffixes or f.startswith(".ci/")]


def test_no_work_is_named_by_an_internal_label():
    hits = []
    for path in _tracked_text_files():
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for match in _LABEL.finditer(text):
            n = text.count("\n", 0, match.start()) + 1
            hits.append(f"{path.relative_to(ROOT)}:{n}: {match.group(0)!r}")
    assert hits == [], "cite works by authors and year:\n" + "\n".join(hits)


def test_readme_card_and_citation_file_list_the_same_works(tiny_dataset):
    from synthoct_bench.references import WORKS, references_markdown

    readme = (ROOT / "README.md").read_text()
    assert references_markdown() in readme
    assert references_markdown() in (tiny_dataset / "README.md").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    for work in WORKS:
        assert work.title.split(":")[0].lower() in " ".join(cff.lower().split()), work.cite
