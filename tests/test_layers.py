"""The layers of snn_icl are a tested contract (import-linter, configured in pyproject.toml)."""

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _contracts():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def test_every_subpackage_and_module_has_a_layer():
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    present = {p.stem for p in (ROOT / "snn_icl").iterdir()
               if (p.is_dir() and (p / "__init__.py").is_file())
               or (p.suffix == ".py" and p.stem != "__init__")}
    assert present == named, f"not in a layer: {present - named}; no such module: {named - present}"


def test_nothing_imports_upward_and_no_cycles(monkeypatch):
    from importlinter.cli import lint_imports

    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename="pyproject.toml", no_cache=True) == 0


def test_an_upward_import_breaks_the_contract(tmp_path, monkeypatch):
    """The check itself: a copy of the package where neurons/ imports the CLI must fail."""
    import shutil
    import sys

    from importlinter.cli import lint_imports

    shutil.copytree(ROOT / "snn_icl", tmp_path / "snn_icl",
                    ignore=shutil.ignore_patterns("pretrained", "__pycache__"))
    bad = tmp_path / "snn_icl" / "neurons" / "alif.py"
    bad.write_text(bad.read_text() + "\nfrom snn_icl import cli  # noqa\n")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "snn_icl" or m.startswith("snn_icl.")]:
        monkeypatch.delitem(sys.modules, name)
    assert lint_imports(config_filename="pyproject.toml", no_cache=True) == 1
