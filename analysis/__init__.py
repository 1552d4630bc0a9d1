"""prunetune.analysis."""

if __name__ != "prunetune.analysis":  # pragma: no cover - guards a mis-configured import path
    # The folder 'analysis/' is installed as 'prunetune.analysis'; imported under its bare name it
    # would be a second copy of every module (two registries, two config classes).
    raise ImportError(f"import this package as 'prunetune.analysis', not '{__name__}' (pip install -e .)")
