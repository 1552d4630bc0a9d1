"""The ``prunetune`` command: strategies, scores, prune, finetune, search, max-drop, trials, report.

Hyper-parameters live in a YAML config (``examples/``), not in flags; ``--set key=value``
overrides single values. Errors a user can fix end with a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from prunetune import records
from prunetune.errors import PrunetuneError
from prunetune.lazy import missing
from prunetune.libs import optuna


def _quiet_libraries() -> None:
    """Progress lines, not the libraries' load reports. Set through their environment variables, read when
    (and if) they are imported, so a command that never loads a model never pays for importing them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' bars follow the hub's switch
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a "View run" line per closed run


def _quiet_search() -> None:
    """A search's terminal shows prunetune's progress lines, not Optuna's per-trial logs; and each epoch's
    checkpoint forces a snapshot of Tune's experiment on purpose (a resume then loses at most the epoch in
    flight), so Ray's warning about its cost on every fast epoch says nothing (cost: benchmark 3)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def _data_config(args: argparse.Namespace) -> Any:
    from prunetune.trainables.config import DataConfig

    return DataConfig(
        source=args.data,
        text_column=args.text_column,
        data_dir=args.data_dir,
        train_split=args.split,
    )


def cmd_strategies(args: argparse.Namespace) -> int:
    from prunetune.trainables.strategies import describe

    print(describe())
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    from prunetune.trainables.data import sample_texts
    from prunetune.trainables.models import load_any, tokenizer_of
    from prunetune.trainables.scores import compute_layer_scores

    model = load_any(args.model)
    texts = sample_texts(_data_config(args), args.rows)
    scores = compute_layer_scores(
        model, tokenizer_of(model, args.model), texts, model_name=args.model, max_length=args.max_length
    )
    if args.json:
        print(scores.to_json())
        return 0
    print(f"{args.model}: {scores.num_layers} layers, scored on {scores.sample_size} texts of {args.data}")
    print("\nlayer  cosine(in,out)  block_influence  angular_distance")
    for row in scores.layer_table():
        cells = (row["cosine_in_out"], row["block_influence"], row["angular_distance"])
        print(f"{row['layer']:>5}  {cells[0]:>14.4f}  {cells[1]:>15.4f}  {cells[2]:>16.4f}")
    print("  (contribution drops layers with high cosine(in,out); angular-block the block with the lowest distance)")
    for count in args.block_sizes or []:
        print(f"\nblocks of {count}: start  angular_distance")
        for row in scores.block_table(count):
            print(f"{'':>10}{row['start']:>5}  {row['angular_distance']:>16.4f}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from prunetune.trainables.data import sample_texts
    from prunetune.trainables.models import load_any, save_any, tokenizer_of
    from prunetune.trainables.scores import compute_layer_scores
    from prunetune.trainables.strategies import get_strategy, kept_layers
    from prunetune.trainables.surgery import keep_layers, num_layers, parameter_count

    params = {
        "count": args.count,
        "start": args.start,
        "start_fraction": args.start_fraction,
        "threshold": args.threshold,
        "layers": args.layers,
    }
    params = {k: v for k, v in params.items() if v is not None}
    model = load_any(args.model)
    tokenizer = tokenizer_of(model, args.model)
    scores = None
    if get_strategy(args.strategy).needs_scores:
        if args.data is None:
            raise SystemExit(f"prunetune prune: strategy {args.strategy!r} scores layers on data: add --data SOURCE")
        scores = compute_layer_scores(
            model, tokenizer, sample_texts(_data_config(args), args.rows), model_name=args.model
        )
    before, params_before = num_layers(model), parameter_count(model)
    kept = kept_layers(args.strategy, before, params, scores)
    keep_layers(model, kept)
    save_any(model, tokenizer, args.output)
    print(
        f"kept layers {list(kept)} of {before} ({before - len(kept)} dropped); "
        f"parameters {params_before:,} -> {parameter_count(model):,}; saved to {args.output}"
    )
    return 0


def cmd_finetune(args: argparse.Namespace) -> int:
    from prunetune.trainables.config import load_trial_config, parse_overrides
    from prunetune.trainables.jobs import run_job

    config = load_trial_config(args.config, parse_overrides(args.set or []))

    def report(metrics: dict[str, Any]) -> None:
        shown = ", ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        print(f"  {shown}", flush=True)

    print(
        f"fine-tuning {config.model} on {config.data.source} ({config.task}), drop={config.drop.strategy} "
        f"{config.drop.params() or ''}".rstrip(),
        flush=True,
    )
    result = run_job(config, report, output_dir=args.output)
    result.pop("history")
    text = json.dumps(result, indent=2)
    print(text)
    if args.metrics:
        with open(args.metrics, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


def _spec(args: argparse.Namespace) -> Any:
    from prunetune.search.spec import load_spec
    from prunetune.trainables.config import parse_overrides

    overrides: dict[str, Any] = parse_overrides(args.set or [])
    if args.address:
        overrides["address"] = args.address
    return load_spec(args.spec, overrides)


def cmd_search(args: argparse.Namespace) -> int:
    from prunetune.search.runner import run_search

    spec = _spec(args)
    _quiet_search()
    result = run_search(spec, resume=args.resume, say=lambda line: print(line, flush=True))
    ref = result.reference
    tuned = (
        "given"
        if ref.given is not None
        else f"lr {ref.learning_rate:.1e}, {ref.epochs} epochs, {len(ref.scores)} seed(s)"
    )
    print(f"\nreference val_score {ref.score:.4f} ({tuned}); {result.trials} trials")
    print(f"Ray results: {result.experiment_path}; MLflow parent run {result.parent_run_id}")
    if result.best is None:
        print(f"no trial stayed within the budget ({spec.budget.tolerance}); widen it or search more trials")
    else:
        print("best within budget: " + json.dumps(result.best))
    return 0


def cmd_max_drop(args: argparse.Namespace) -> int:
    from prunetune.search.max_drop import max_drop, render

    if args.seeds is not None:
        args.set = [*(args.set or []), f"seeds={args.seeds}"]
    spec = _spec(args)
    _quiet_search()
    # With --json the answer alone goes to stdout (for other tools); progress, and whatever a library
    # prints, goes to stderr.
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        answer = max_drop(spec, args.tolerance, resume=args.resume, say=lambda line: print(line, flush=True))
    document = json.dumps(answer.to_dict(), indent=2)
    if args.output:
        Path(args.output).write_text(document + "\n")
    if args.json:
        print(document)
    else:
        print("\n" + render(answer))
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    from prunetune.analysis import select
    from prunetune.analysis.query import experiment_frame, open_store, search_and_store, search_runs_frame

    if args.all_searches:
        mlflow = open_store(args.tracking_uri)
        frame = experiment_frame(mlflow, args.search)
    else:
        mlflow, search = search_and_store(args.search, args.tracking_uri)
        frame = search_runs_frame(mlflow, search)
    frame = select.where(frame, args.where)
    frame = select.sort(frame, args.sort or ",".join(f"-{column}" for column in records.RANKED_BY))
    frame = select.columns(frame, args.columns or (None if args.format in ("csv", "json") else _SHOWN))
    if args.format == "csv":
        text = frame.to_csv(index=False)
    elif args.format == "json":
        text = frame.to_json(orient="records", date_format="iso", indent=2) + "\n"
    elif args.format == "markdown":
        from prunetune.analysis.tables import to_markdown

        text = to_markdown(frame) + "\n"
    else:
        text = frame.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}") + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"{len(frame)} runs written to {args.output}")
    else:
        print(text, end="")
    return 0


# What `prunetune trials` shows in a terminal; CSV and JSON carry every column.
_SHOWN = "kind,status,strategy,layers_dropped,kept_layers,val_score,drop,learning_rate,epochs,run_id"


def cmd_report(args: argparse.Namespace) -> int:
    from prunetune.analysis.query import search_and_store
    from prunetune.analysis.report import write_report

    mlflow, search = search_and_store(args.search, args.tracking_uri)
    output = args.output or f"{search.experiment_name}-report.html"
    path = write_report(mlflow, search, output, args.tolerance, log=not args.no_log)
    logged = "" if args.no_log else f"; logged to run {search.run_id} as report/{path.name}"
    print(f"report of {search.experiment_name} (search run {search.run_id}) written to {path}{logged}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prunetune", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_args(p: argparse.ArgumentParser, required: bool) -> None:
        p.add_argument("--data", required=required, help="preset, directory or hub id whose training texts to score on")
        p.add_argument("--data-dir", help="local copies of presets (default $PRUNETUNE_DATA_DIR)")
        p.add_argument("--text-column", help="column holding the text (default: text/Text/sentence/…)")
        p.add_argument("--split", default="train", help="split to sample texts from (default train)")
        p.add_argument("--rows", type=int, default=256, help="texts in the sample (default 256)")

    p = sub.add_parser("strategies", help="list the layer-dropping strategies")
    p.set_defaults(run=cmd_strategies)

    p = sub.add_parser("scores", help="per-layer contribution and block angular distances on a data sample")
    p.add_argument("model", help="hub id or local path (a SentenceTransformer folder works too)")
    data_args(p, required=True)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--block-sizes", type=int, nargs="*", help="also list blocks of these sizes")
    p.add_argument("--json", action="store_true", help="print the full table as JSON")
    p.set_defaults(run=cmd_scores)

    p = sub.add_parser("prune", help="drop layers by a strategy and save the pruned model")
    p.add_argument("model")
    p.add_argument("--strategy", required=True, help="see `prunetune strategies`")
    p.add_argument("--count", type=int)
    p.add_argument("--start", type=int)
    p.add_argument("--start-fraction", type=float)
    p.add_argument("--threshold", type=float)
    p.add_argument("--layers", type=lambda s: [int(x) for x in s.split(",") if x.strip()], help="explicit: 3,4,5")
    p.add_argument("--output", "-o", required=True)
    data_args(p, required=False)
    p.set_defaults(run=cmd_prune)

    p = sub.add_parser("finetune", help="one prune + fine-tune job from a YAML config (default: the embedded one)")
    p.add_argument("config", nargs="?", help="YAML TrialConfig (see examples/); omitted: MiniLM on IndicNews English")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one value, e.g. training.epochs=3")
    p.add_argument("--output", "-o", help="save the fine-tuned model and prunetune-result.json here")
    p.add_argument("--metrics", help="also write the final metrics as JSON to this file")
    p.set_defaults(run=cmd_finetune)

    p = sub.add_parser("search", help="search which layers to drop, under an accuracy-drop budget (Ray Tune + Optuna)")
    p.add_argument("spec", nargs="?", help="YAML search spec (see examples/); omitted: the embedded default")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one value, e.g. num_trials=20")
    p.add_argument("--address", help="join this Ray cluster (default $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of the same spec")
    p.set_defaults(run=cmd_search)

    p = sub.add_parser("max-drop", help="the most layers droppable within each tolerance, re-checked over seeds")
    p.add_argument("spec", nargs="?", help="YAML search spec; omitted: the embedded default")
    p.add_argument(
        "--tolerance", type=float, nargs="+", default=[0.01, 0.02, 0.03], help="drops to answer (0.01 = 1 point)"
    )
    p.add_argument(
        "--seeds",
        type=int,
        help="how many decision seeds the reference and each finalist train on (default: the spec's seeds, 5)",
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON (progress goes to stderr)")
    p.add_argument("--output", "-o", help="also write the answer as JSON to this file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one spec value")
    p.add_argument("--address", help="join this Ray cluster (default $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted max-drop of the same spec")
    p.set_defaults(run=cmd_max_drop)

    what = "a spec file, a search's name (its latest run) or a search's parent run id"
    p = sub.add_parser("trials", help="list, filter, sort and export the trials of a search (from MLflow)")
    p.add_argument("search", help=what + "; with --all-searches, an experiment name")
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI, else ./prunetune-runs)")
    p.add_argument("--where", help='filter, e.g. "drop<=0.01 and (strategy=middle or strategy in [top, window])"')
    p.add_argument("--sort", help="columns, - for descending (default -layers_dropped,-val_score)")
    p.add_argument("--columns", help="columns to show, comma-separated")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
    p.add_argument("--output", "-o", help="write to this file")
    p.add_argument("--all-searches", action="store_true", help="every search of the experiment, not the latest")
    p.set_defaults(run=cmd_trials)

    p = sub.add_parser("report", help="one HTML report of a search: tables, plots, spec; logged to its parent run")
    p.add_argument("search", help=what)
    p.add_argument("--tracking-uri", help="MLflow store (default $MLFLOW_TRACKING_URI, else ./prunetune-runs)")
    p.add_argument("--tolerance", type=float, nargs="+", default=[0.01, 0.02, 0.03])
    p.add_argument("--output", "-o", help="HTML file (default <search>-report.html)")
    p.add_argument("--no-log", action="store_true", help="do not attach the report to the search's MLflow run")
    p.set_defaults(run=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        _quiet_libraries()
    try:
        return int(args.run(args))
    except PrunetuneError as err:  # every expected failure: one line naming the problem and the fix
        print(f"prunetune {args.command}: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional library imported directly, not through prunetune.lazy
        found = missing(err)
        if found is None:
            raise
        print(f"prunetune {args.command}: {found}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
