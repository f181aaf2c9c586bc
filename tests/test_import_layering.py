"""Imports go downward only (DESIGN 2): a static check of every import, and fresh interpreters.

The static test reads every ``import`` of ``src/vlreid`` with :mod:`ast` (module level, inside
functions and under ``TYPE_CHECKING`` alike: a hidden import that climbs back up is still an
upward arrow) and checks it against :data:`ALLOWED`. The run-time tests each start a new
interpreter, because this one has imported everything already.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import vlreid

PACKAGE = Path(vlreid.__file__).resolve().parent

ALLOWED: dict[str, frozenset[str]] = {
    # Entry points: the command line, the embedded demo, the tiny models of tests and scripts.
    "cli": frozenset(
        {"demo", "captioning", "training", "evaluation", "export", "model", "datasets"}
        | {"synthetic", "templates", "config", "preprocessing", "typed_toml", "attributes"}
        | {"paths", "errors"}
    ),
    "demo": frozenset(
        {"captioning", "training", "evaluation", "export", "model", "datasets", "synthetic"}
        | {"templates", "config", "attributes", "paths", "errors"}
    ),
    "testing": frozenset(
        {"captioning", "model", "datasets", "synthetic", "templates", "attributes", "errors"}
    ),
    # Features. Training evaluates as it goes with evaluation's engine; evaluation never
    # imports training (nor captioning), so a trained model is scored without training code.
    "captioning": frozenset(
        {"model", "datasets", "templates", "config", "attributes", "hub", "paths", "errors"}
    ),
    "training": frozenset(
        {"evaluation", "model", "datasets", "templates", "config", "method_options"}
        | {"model_config", "errors"}
    ),
    "export": frozenset({"evaluation", "model", "datasets", "config", "errors"}),
    "evaluation": frozenset({"model", "datasets", "config", "paths", "errors"}),
    # Building blocks. The inference model preprocesses with datasets.transforms.
    "model": frozenset({"datasets", "config", "model_config", "preprocessing", "hub", "errors"}),
    "datasets": frozenset({"config", "preprocessing", "attributes", "errors"}),
    "synthetic": frozenset({"attributes", "errors"}),
    "templates": frozenset({"attributes", "errors"}),
    # Foundations: the run config and the plain dataclasses it is made of (no torch).
    "config": frozenset({"typed_toml", "method_options", "model_config", "paths", "errors"}),
    "model_config": frozenset({"preprocessing", "errors"}),
    "method_options": frozenset({"errors"}),
    "preprocessing": frozenset(),
    "typed_toml": frozenset({"errors"}),
    "attributes": frozenset(),
    "errors": frozenset(),
    "paths": frozenset(),  # absolute_path: user paths resolved where they enter
    "hub": frozenset({"errors"}),  # hub_access: a Hub id fails in seconds without network
    # The package itself: ``vlreid.load_model`` is a lazy export of the model.
    "vlreid": frozenset({"model"}),
}
"""Component (first name under ``vlreid``) -> the components it may import."""

PENDING: frozenset[tuple[str, str]] = frozenset()
"""Upward arrows that exist today and are being removed on another branch."""

HEAVY = ("torch", "numpy", "pandas", "PIL", "open_clip", "transformers")

BLOCK_TRANSFORMERS = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "transformers":
            raise ImportError("transformers is blocked")
sys.meta_path.insert(0, Block())
"""
"""Makes ``import transformers`` fail, as where it is not installed (open_clip then skips its
Hugging Face text towers); a module of ours that needed transformers would fail to import."""


def component_of(module: str) -> str:
    """``vlreid.training.loop`` -> ``training``; ``vlreid`` -> ``vlreid``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def module_name(path: Path) -> str:
    """Dotted name of a source file of the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def vlreid_imports(path: Path, name: str) -> list[tuple[int, str]]:
    """``(line, imported module)`` of every ``vlreid`` import in module ``name`` at ``path``.

    Relative imports are resolved; ``from vlreid import __version__`` names the package itself,
    ``from vlreid import config`` names ``vlreid.config``.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base == "vlreid":
                for alias in node.names:
                    module = "vlreid" if alias.name == "__version__" else f"vlreid.{alias.name}"
                    found.append((node.lineno, module))
            else:
                found.append((node.lineno, base))
    return sorted((line, module) for line, module in found if module.split(".")[0] == "vlreid")


def run_fresh(code: str, block_transformers: bool = False) -> dict:
    """Run ``code`` in a new interpreter on this package; return the JSON it prints last."""
    code = (BLOCK_TRANSFORMERS if block_transformers else "") + textwrap.dedent(code)
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(PACKAGE.parent), os.environ.get("PYTHONPATH")])
    )
    finished = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return json.loads(finished.stdout.strip().splitlines()[-1])


def test_the_allowed_graph_has_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        assert state.get(node) != "open", f"cycle: {' -> '.join([*trail, node])}"
        if state.get(node) == "done":
            return
        state[node] = "open"
        for target in sorted(ALLOWED[node]):
            visit(target, [*trail, node])
        state[node] = "done"

    assert set().union(*ALLOWED.values()) <= set(ALLOWED)
    for node in sorted(ALLOWED):
        visit(node, [])


def test_every_import_in_the_package_goes_down_the_allowed_graph() -> None:
    sources = sorted(PACKAGE.rglob("*.py"))
    assert len(sources) > 50  # the package itself, not an empty folder
    violations = []
    for path in sources:
        source = component_of(module_name(path))
        where = path.relative_to(PACKAGE.parent)
        if source not in ALLOWED:
            violations.append(f"{where}: component {source!r} is not in ALLOWED; give it a place")
            continue
        for line, module in vlreid_imports(path, module_name(path)):
            target = component_of(module)
            if target == source or module == "vlreid":
                continue  # within the component, or the package's own __version__
            if target not in ALLOWED[source] and (source, target) not in PENDING:
                violations.append(f"{where}:{line}: {source} imports {module}")
    assert not violations, "imports against DESIGN 2's direction:\n" + "\n".join(violations)


def test_no_modules_import_each_other() -> None:
    """Within a component too: no module reaches itself through its imports (``Pen`` lives in
    its own module so that the renderer's body, clothes and figure modules form no cycle)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for _, module in vlreid_imports(path, name):
            while module not in modules:  # ``from package import function`` -> the package
                module = module.rpartition(".")[0]
            if module not in (name, "vlreid"):  # the package's __version__ is no arrow
                graph[name].add(module)
    cycles = []
    for start in sorted(graph):
        trail, stack, seen = {start: [start]}, [start], {start}
        while stack:
            node = stack.pop()
            for target in sorted(graph[node]):
                if target == start:
                    cycles.append(" -> ".join([*trail[node], start]))
                elif target not in seen:
                    seen.add(target)
                    trail[target] = [*trail[node], target]
                    stack.append(target)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_static_reader_finds_every_form_of_import(tmp_path: Path) -> None:
    """The reader of the test above, on a made-up module: none of the forms slips through."""
    path = tmp_path / "fake.py"
    path.write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            import vlreid.model.weights
            from vlreid import __version__, config
            from . import metrics
            from ..datasets.loaders import LoaderConfig
            if TYPE_CHECKING:
                from vlreid.training.data import RunData
            def late():
                from vlreid.captioning import run
            """
        )
    )
    assert vlreid_imports(path, "vlreid.evaluation.fake") == [
        (3, "vlreid.model.weights"),
        (4, "vlreid"),
        (4, "vlreid.config"),
        (5, "vlreid.evaluation"),
        (6, "vlreid.datasets.loaders"),
        (8, "vlreid.training.data"),
        (10, "vlreid.captioning"),
    ]


def test_import_vlreid_stays_light() -> None:
    loaded = run_fresh(
        """
        import json, sys
        import vlreid
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert [name for name in loaded if name.split(".")[0] == "vlreid"] == ["vlreid"]
    assert not [name for name in loaded if name.split(".")[0] in HEAVY]


def test_reading_a_run_config_imports_nothing_heavy() -> None:
    """config.py's method options, model config and preprocessing are plain dataclasses."""
    loaded = run_fresh(
        """
        import json, sys
        import vlreid.config
        vlreid.config.config_from_toml('[method]\\nname = "scgi"\\n[stages.image]\\n')
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert "vlreid.config" in loaded and "vlreid.method_options" in loaded
    assert [name for name in loaded if name.split(".")[0] in HEAVY] == []
    assert [name for name in loaded if name.startswith(("vlreid.training", "vlreid.model."))] == []


def test_the_inference_model_imports_no_training_captioning_synthetic_or_transformers() -> None:
    """Imported where transformers cannot be (open_clip imports it whenever it is installed)."""
    loaded = run_fresh(
        """
        import json
        import vlreid.model, vlreid.model.backbone, vlreid.model.vision, vlreid.model.weights
        print(json.dumps(sorted(sys.modules)))
        """,
        block_transformers=True,
    )
    assert "vlreid.model.weights" in loaded and "open_clip" in loaded
    forbidden = ("vlreid.training", "vlreid.captioning", "vlreid.synthetic", "transformers")
    assert [name for name in loaded if name.startswith(forbidden)] == []


def test_evaluation_modules_import_no_training() -> None:
    loaded = run_fresh(
        """
        import importlib, json, pkgutil
        import vlreid.evaluation
        found = pkgutil.iter_modules(vlreid.evaluation.__path__)
        names = [f"vlreid.evaluation.{module.name}" for module in found]
        for name in names:
            importlib.import_module(name)
        print(json.dumps({"imported": names, "loaded": sorted(sys.modules)}))
        """,
        block_transformers=True,
    )
    assert {"vlreid.evaluation.features", "vlreid.evaluation.metrics"} <= set(loaded["imported"])
    assert set(loaded["imported"]) <= set(loaded["loaded"])
    forbidden = ("vlreid.training", "vlreid.captioning", "vlreid.synthetic", "transformers")
    assert [name for name in loaded["loaded"] if name.startswith(forbidden)] == []
