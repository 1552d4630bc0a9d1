"""prunetune.trainables."""

if __name__ != "prunetune.trainables":  # pragma: no cover - guards a mis-configured import path
    # The folder 'trainables/' is installed as 'prunetune.trainables'; imported under its bare name it
    # would be a second copy of every module (two registries, two config classes).
    raise ImportError(f"import this package as 'prunetune.trainables', not '{__name__}' (pip install -e .)")
