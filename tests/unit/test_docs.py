"""The docs match the code: the names docs/architecture.md cites exist, every relative link resolves, and the
README stays a page a newcomer reads in minutes, its details in the guides it links."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("prunetune", "search", "trainables", "analysis")
SOURCES = "\n".join(p.read_text() for d in PACKAGES for p in (REPO / d).rglob("*.py"))


def _defined(name: str) -> bool:
    return re.search(rf"^\s*(class|def)\s+{re.escape(name)}\b|^\s*{re.escape(name)}\s*[:=]", SOURCES, re.M) is not None


def _exists(path: str) -> bool:
    return any((REPO / root / path).exists() for root in ("", "docs", "tests", *PACKAGES))


def _cites_something_real(name: str) -> bool:
    if re.fullmatch(r"[\w/.-]+\.(py|md|txt|yaml|toml)", name):  # a file
        return _exists(name)
    if re.fullmatch(r"[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]+)+", name):  # a class: prunetune's own, or one it uses
        return _defined(name) or re.search(rf"\b{name}\b", SOURCES) is not None
    dotted = re.fullmatch(r"([A-Za-z_]+)\.([A-Za-z_]+)", name)
    if dotted:  # package.module, module.function or Class.method
        head, member = dotted.groups()
        head = "" if head == "prunetune" else head
        path = f"{head}/{member}".lstrip("/")
        return _exists(f"{path}.py") or _exists(path) or _defined(member)
    return True  # code, keys and values: not names of the code


def test_every_name_the_architecture_cites_exists_in_the_code() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    missing = sorted(name for name in set(re.findall(r"`([^`\s]+)`", text)) if not _cites_something_real(name))
    assert not missing, f"docs/architecture.md cites names the code does not have: {missing}"


def test_every_relative_link_in_the_readme_and_the_docs_resolves() -> None:
    broken = []
    for page in [REPO / "README.md", *(REPO / "docs").glob("*.md"), REPO / "bench" / "tables" / "README.md"]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_the_readme_is_short_and_links_a_guide_for_each_topic_it_summarises() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for guide in ("versions", "finetune", "search", "max-drop", "results", "cluster", "data", "benchmarks"):
        assert f"(docs/{guide}.md)" in readme, guide


def test_the_examples_in_the_public_docstrings_run() -> None:
    """The Args/Returns docstrings' examples are doctests: the pure ones run here, the rest are marked to skip."""
    import doctest

    from prunetune.analysis import query, tables
    from prunetune.search import max_drop, runner
    from prunetune.trainables import strategies, surgery

    for module in (strategies, surgery, query, tables, runner, max_drop):
        failed, _ = doctest.testmod(module, extraglobs={"kept_layers": strategies.kept_layers})
        assert failed == 0, module.__name__
    found = doctest.DocTestFinder().find(strategies.kept_layers)
    assert found and found[0].examples, "kept_layers shows an example that runs"
