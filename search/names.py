"""The MLflow names a search writes and the analysis reads: tags, artifacts. No imports, so readers stay light."""

TAG_KIND = "prunetune.kind"  # search | trial | reference | scratch
TAG_STATUS = "prunetune.status"  # complete | early-stopped | failed
TAG_TRIAL = "prunetune.ray_trial_id"
TAG_SEARCH = "prunetune.search"
TAG_REFERENCE_KEY = "prunetune.reference_key"
TAG_REFERENCE_RUN = "prunetune.reference_run_id"  # on a search's run: the reference it was measured against
TAG_BEST = "prunetune.best"
PARENT = "mlflow.parentRunId"
# Artifacts of a search's parent run.
SPEC_ARTIFACT = "spec.json"
LAYER_SCORES_ARTIFACT = "layer_scores.json"
