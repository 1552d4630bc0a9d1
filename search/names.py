"""The MLflow names a search writes and the analysis reads: tags, artifacts. No imports, so readers stay light."""

TAG_KIND = "prunetune.kind"  # search | trial | reference | scratch | recheck
TAG_STATUS = "prunetune.status"  # complete | early-stopped | failed | interrupted (its driver was killed)
TAG_CHECKPOINT_EPOCH = "prunetune.checkpoint_epoch"  # the epoch a retry of the trial would continue from
TAG_RETRIES = "prunetune.retries"  # times the trial was retried after its process died
TAG_TRIAL = "prunetune.ray_trial_id"
TAG_SEARCH = "prunetune.search"
TAG_REFERENCE_KEY = "prunetune.reference_key"
TAG_REFERENCE_RUN = "prunetune.reference_run_id"  # on a search's run: the reference it was measured against
# On a search's run: the runs (one per decision seed) of the tuned reference's best configuration, JSON.
TAG_REFERENCE_RUNS = "prunetune.reference_run_ids"
TAG_BEST = "prunetune.best"
PARENT = "mlflow.parentRunId"
# Artifacts of a search's parent run.
SPEC_ARTIFACT = "spec.json"
LAYER_SCORES_ARTIFACT = "layer_scores.json"
