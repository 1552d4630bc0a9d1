"""The layering rule, checked in a fresh interpreter: the driver and the analysis load no torch and no
transformers, the analysis nothing of the trainables (it runs on a laptop that only reads MLflow), and the light
commands no Ray either: only a search or a max-drop imports Ray Tune (prunetune.search.tuner)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "sentence_transformers", "datasets")


def _loaded(*modules: str) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_the_analysis_loads_no_torch_and_nothing_of_the_trainables() -> None:
    loaded = _loaded(
        "prunetune.analysis.query",
        "prunetune.analysis.tables",
        "prunetune.analysis.plots",
        "prunetune.analysis.report",
        "prunetune.analysis.select",
    )
    assert not loaded & set(HEAVY)
    assert not {m for m in loaded if m.startswith("prunetune.trainables")}


def test_the_search_driver_loads_no_torch_until_it_runs() -> None:
    loaded = _loaded(
        "prunetune.cli",
        "prunetune.search.runner",
        "prunetune.search.max_drop",
        "prunetune.search.searcher",
        "prunetune.search.reference",
        "prunetune.search.tracking",
    )
    assert not loaded & set(HEAVY)


def test_light_commands_load_no_ray_torch_or_transformers() -> None:
    """`prunetune --help`, `strategies` and the analysis commands' modules import prunetune's own modules at their
    top; the optional libraries wait for first use (prunetune.libs), and only the search's runner loads Ray."""
    code = (
        "import json, sys\n"
        "from prunetune.cli import main\n"
        "for argv in (['strategies'], ['--help'], ['trials', '--help'], ['report', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    loaded = {name.split(".")[0] for name in json.loads(done.stdout.splitlines()[-1])}
    assert not loaded & {"ray", "optuna", "mlflow", "matplotlib", *HEAVY}
    assert "ray" in _loaded("prunetune.search.runner")  # the check above could fail: the runner does load Ray


def test_the_trainables_import_without_torch_and_say_which_extra_brings_it() -> None:
    """prunetune.lazy: importing a module loads no optional library; the first use of a missing one ends in
    one MissingDependency naming the extra, and `prunetune strategies` runs where torch cannot be imported."""
    block = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers', 'sentence_transformers'):\n"
        "            raise ModuleNotFoundError(f'blocked for this test: {name}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    code = block + (
        "from prunetune.trainables import jobs, models, training\n"
        "from prunetune.lazy import MissingDependency\n"
        "try:\n"
        "    models.pick_device('auto')\n"
        "except MissingDependency as err:\n"
        "    print('missing:', err)\n"
        "from prunetune.cli import main\n"
        "sys.exit(main(['strategies']))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "missing: needs torch, which is not installed: pip install 'prunetune[train]'" in done.stdout
    assert "contribution" in done.stdout  # the strategies table was printed


def test_reading_a_spec_loads_nothing_of_the_trainables() -> None:
    """The config engine lives on the ground floor (prunetune.config): a spec read by the search or the analysis
    brings in no trainables module."""
    code = (
        "import json, sys\n"
        "from prunetune.search.spec import load_spec\n"
        "from prunetune.analysis.query import search_and_store\n"
        "load_spec('examples/max-drop-minilm-indicnews.yaml')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('prunetune.trainables'))))\n"
    )
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []
