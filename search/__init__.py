"""prunetune.search."""

if __name__ != "prunetune.search":  # pragma: no cover - guards a mis-configured import path
    # The folder 'search/' is installed as 'prunetune.search'; imported under its bare name it
    # would be a second copy of every module (two registries, two config classes).
    raise ImportError(f"import this package as 'prunetune.search', not '{__name__}' (pip install -e .)")
