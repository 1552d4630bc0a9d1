"""prunetune: search which transformer layers to drop, fine-tune the pruned encoder, read the results.

Hyper-parameters live in a YAML config (see examples/), not in flags; --set key=value overrides one value.
Errors you can fix end with a one-line message and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from prunetune import records, stops
from prunetune.analysis import select, tables
from prunetune.analysis.query import experiment_frame, open_store, search_and_store, search_runs_frame
from prunetune.analysis.report import write_report
from prunetune.analysis.tables import to_markdown
from prunetune.config import ConfigError, DataConfig, TrialConfig, parse_overrides
from prunetune.errors import PrunetuneError
from prunetune.lazy import missing
from prunetune.libs import optuna
from prunetune.search.answer_model import ExportError, export_run
from prunetune.search.render import render_search
from prunetune.search.spec import SearchSpec, load_spec
from prunetune.trainables.data import sample_texts
from prunetune.trainables.job_file import load_trial_config
from prunetune.trainables.jobs import run_job
from prunetune.trainables.models import load_any, save_any, tokenizer_of
from prunetune.trainables.scores import compute_layer_scores
from prunetune.trainables.sources import PRESET_NAMES, default_data_dir, fetch, known_preset
from prunetune.trainables.strategies import check_params, describe, kept_layers
from prunetune.trainables.surgery import keep_layers, num_layers, parameter_count

__all__ = ["build_parser", "cmd_max_drop", "cmd_search", "joined_values", "main"]


def _quiet_libraries() -> None:
    """Progress lines, not the libraries' load reports. Set through their environment variables, read when
    (and if) they are imported, so a command that never loads a model never pays for importing them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # transformers' bars follow the hub's switch
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a "View run" line per closed run
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # "Creating initial MLflow database tables..."
    if "transformers" in sys.modules:  # imported already (a caller's, or a test's): its variables were read
        sys.modules["transformers"].utils.logging.set_verbosity_error()
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def _quiet_search() -> None:
    """A search's terminal shows prunetune's progress lines, not Optuna's per-trial logs; and each epoch's
    checkpoint forces a snapshot of Tune's experiment on purpose (a resume then loses at most the epoch in
    flight), so Ray's warning about its cost on every fast epoch says nothing (cost: benchmark 3)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's console output that heeds verbose=0: not the experiment box, "View detailed results here" and a
    # TensorBoard hint (TensorBoard is not installed), which its newer output prints whatever the verbosity.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


def _data_config(args: argparse.Namespace) -> DataConfig:
    return DataConfig(
        source=args.data,
        text_column=args.text_column,
        data_dir=args.data_dir,
        train_split=args.split,
    )


def cmd_strategies(args: argparse.Namespace) -> int:
    print(describe())
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    texts = sample_texts(_data_config(args), args.rows)  # bad data ends here, before the model loads
    model = load_any(args.model)

    layers = num_layers(model)
    too_big = [size for size in args.block_sizes or [] if size > layers]
    if too_big:
        raise PrunetuneError(f"--block-sizes {too_big[0]}: {args.model} has {layers} layers; blocks of 1 to {layers}")
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
    params = {
        "count": args.count,
        "start": args.start,
        "start_fraction": args.start_fraction,
        "threshold": args.threshold,
        "layers": args.layers,
    }
    params = {k: v for k, v in params.items() if v is not None}
    strategy = check_params(args.strategy, params)  # a typo fails before the model loads
    _writable_folder(args.output, "--output")
    model = load_any(args.model)
    tokenizer = tokenizer_of(model, args.model)
    scores = None
    if strategy.needs_scores:
        if args.data is None:
            raise PrunetuneError(f"strategy {args.strategy!r} scores layers on data: add --data SOURCE")
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
    # The whole config, drop strategy included, is checked before the job's libraries load or data is read.
    config = load_trial_config(args.config, parse_overrides(args.set or []))
    _writable_folder(args.output, "--output")  # before any training: a model trained for nothing is lost
    _writable_file(args.metrics, "--metrics")
    if args.teacher_run is not None:
        config = _with_teacher_run(config, args)

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


def _with_teacher_run(config: TrialConfig, args: argparse.Namespace) -> TrialConfig:
    """``--teacher-run``: the teacher is that recorded job's model, re-created here (trials keep no weights)."""
    if not config.distill.on or config.distill.teacher is not None:
        raise ConfigError("--teacher-run teaches a distilled job: set distill.alpha > 0 and no distill.teacher")
    mlflow = open_store(args.tracking_uri)
    folder = Path(args.output) / "teacher" if args.output else Path(tempfile.mkdtemp(prefix="prunetune-teacher-"))
    export_run(mlflow, args.teacher_run, folder, say=_progress)
    return config.with_overrides({"distill.teacher": str(folder)})


def _spec(args: argparse.Namespace) -> SearchSpec:
    overrides: dict[str, Any] = parse_overrides(args.set or [])
    if args.address:
        overrides["address"] = args.address
    return load_spec(args.spec, overrides)


def _progress(line: str) -> None:
    """A search's progress goes to stderr, its answer to stdout: `prunetune max-drop … > answer.txt` keeps
    only the answer."""
    print(line, file=sys.stderr, flush=True)


def cmd_search(args: argparse.Namespace) -> int:
    # Imported here, as the search starts: the runner loads Ray (it subclasses Tune's classes), and the light
    # commands (--help, strategies, trials, report) load none.
    from prunetune.search.runner import run_search

    spec = _spec(args)
    _quiet_search()
    with contextlib.redirect_stdout(sys.stderr):  # whatever a library prints is progress, not the answer
        result = run_search(spec, resume=args.resume, say=_progress, register=args.register)
    print(render_search(result, spec.budget.tolerance, spec.budget.relative))
    return 0


def cmd_max_drop(args: argparse.Namespace) -> int:
    from prunetune.search.max_drop import max_drop, render  # loads Ray, as cmd_search's import says

    if args.seeds is not None:
        args.set = [*(args.set or []), f"seeds={args.seeds}"]
    _writable_file(args.output, "--output")
    spec = _spec(args)
    if spec.seeds < 2:
        _progress(
            f"seeds={spec.seeds}: one decision seed gives no interval, so no answer can be *within*, at best "
            "borderline; 3 or more (5 by default) decide"
        )
    _quiet_search()
    with contextlib.redirect_stdout(sys.stderr):  # whatever a library prints is progress, not the answer
        answer = max_drop(spec, args.tolerance, resume=args.resume, say=_progress, register=args.register)
    document = json.dumps(answer.to_dict(), indent=2)
    if args.output:
        Path(args.output).write_text(document + "\n")
    print(document if args.json else render(answer))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    _writable_folder(args.output, "--output")
    mlflow = open_store(args.tracking_uri)  # a store that does not exist is refused before anything trains
    folder = Path(args.output)
    if folder.exists() and any(folder.iterdir()):
        raise ExportError(f"{folder} is not empty: give a new or empty folder")
    result = export_run(mlflow, args.run_id, folder, say=_progress)
    print(f"{folder}: val_score {float(result['val_score']):.4f}; load it with from_pretrained('{folder}')")
    return 0


def cmd_trials(args: argparse.Namespace) -> int:
    _writable_file(args.output, "--output")
    if args.all_searches:
        mlflow = open_store(args.tracking_uri)
        frame = experiment_frame(mlflow, args.search)
    else:
        mlflow, search = search_and_store(args.search, args.tracking_uri)
        frame = search_runs_frame(mlflow, search)
    frame = select.where(frame, args.where)
    frame = select.sort(frame, args.sort)
    shown = _SHOWN + (",distill_alpha,distill_temperature" if tables.distilled(frame) else "")
    frame = select.columns(frame, args.columns or (None if args.format in ("csv", "json") else shown))
    if frame.empty:
        # Said, not shown as pandas' "Empty DataFrame"; CSV and JSON still get their (empty) document for tools.
        print(f"no trials match: {args.where}" if args.where else "no trials recorded yet", file=sys.stderr)
        if args.format in ("table", "markdown"):
            return 0
    text = _render(frame, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
        print(f"{len(frame)} runs written to {args.output}")
    else:
        print(text, end="")
    return 0


def _render(frame: Any, form: str) -> str:
    """The trials ``frame`` as text in format ``form`` (table, csv, json, markdown)."""
    if form == "csv":
        return str(frame.to_csv(index=False))
    if form == "json":
        return str(frame.to_json(orient="records", date_format="iso", indent=2)) + "\n"
    if form == "markdown":
        return to_markdown(frame) + "\n"
    return str(frame.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")) + "\n"


# What `prunetune trials` shows in a terminal; CSV and JSON carry every column.
_SHOWN = "kind,status,strategy,layers_dropped,kept_layers,val_score,drop,learning_rate,epochs,run_id"


def cmd_report(args: argparse.Namespace) -> int:
    if args.output and Path(args.output).is_dir():
        raise PrunetuneError(f"--output {args.output} is a folder: give the report's file name, e.g. report.html")
    _writable_folder(str(Path(args.output).parent) if args.output else None, "--output")
    mlflow, search = search_and_store(args.search, args.tracking_uri)
    output = args.output or f"{search.experiment_name}-report.html"
    if not Path(output).parent.exists():
        print(f"creating the folder {Path(output).parent} for the report", file=sys.stderr)
    path = write_report(mlflow, search, output, args.tolerance, log=not args.no_log)
    logged = "" if args.no_log else f"; logged to run {search.run_id} as report/{path.name}"
    print(f"report of {search.experiment_name} (search run {search.run_id}) written to {path}{logged}")
    return 0


def _data_root(args: argparse.Namespace) -> Path:
    return Path(args.data_dir).expanduser() if args.data_dir else default_data_dir()


def cmd_data_list(args: argparse.Namespace) -> int:
    root = _data_root(args)
    print(f"data dir: {root}")
    for name in PRESET_NAMES:
        found = known_preset(name)
        if found.local(root) is not None:
            where = f"present   {root / found.folder}"
        elif found.remote.hub_id is not None:
            where = f"hub       {found.remote.hub_id} (downloaded and cached on first use)"
        else:
            where = f"missing   prunetune data fetch {name}"
        print(f"  {name:<24}{where}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    root = _data_root(args)
    found = known_preset(args.preset)
    if found.local(root) is not None:
        print(f"{args.preset} is already in {root / found.folder}")
        return 0
    path = fetch(args.preset, root, say=lambda line: print(line, flush=True))
    print(f"{args.preset} fetched into {path}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a drop in (0, 1): {_TOLERANCE_UNIT}")
    return value


def _layer_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give layer indices separated by commas, e.g. 3,4,5") from None


def _writable_file(path: str | None, option: str) -> None:
    """An output file's folder must exist and the file must not be a folder: checked before any work."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise PrunetuneError(f"{option} {path} is a folder: give a file name")
    if not target.parent.is_dir():
        raise PrunetuneError(f"{option} {path}: the folder {target.parent} does not exist; create it first")
    if not os.access(target.parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise PrunetuneError(f"{option} {path}: not writable here; choose another path")


def _writable_folder(path: str | None, option: str) -> None:
    """An output folder may exist (a folder) or be made (its nearest existing parent writable): checked first."""
    if path is None:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise PrunetuneError(f"{option} {path} is a file, not a folder: give a folder")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK):
        raise PrunetuneError(f"{option} {path}: {existing} is not a writable folder; choose another path")


class _Parser(argparse.ArgumentParser):
    """A usage error is one line, as every other refusal: what is wrong, and where the options are listed."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default, shown by argparse; an unset one (None, or an off switch) is not shown: its
    help says what leaving it out means. Descriptions keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _command(sub: Any, name: str, summary: str) -> argparse.ArgumentParser:
    """A sub-command whose ``--help`` starts with its one-line summary, its options' defaults shown."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=summary, description=summary, formatter_class=_HelpFormatter
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="prunetune", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="show library logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_strategies(sub)
    _add_scores(sub)
    _add_prune(sub)
    _add_finetune(sub)
    _add_search(sub)
    _add_max_drop(sub)
    _add_trials(sub)
    _add_report(sub)
    _add_export(sub)
    _add_data(sub)
    return parser


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", help="local copies of presets (default: $PRUNETUNE_DATA_DIR, else ~/.cache/prunetune/data)"
    )


def _data_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--data", required=required, help="preset, directory or hub id whose training texts to score on")
    _data_dir_arg(p)
    p.add_argument("--text-column", help="column holding the text (default: text/Text/sentence/…)")
    p.add_argument("--split", default="train", help="split to sample texts from")
    p.add_argument("--rows", type=_positive_int, default=256, help="texts in the sample")


def _add_strategies(sub: Any) -> None:
    p = _command(sub, "strategies", "list the layer-dropping strategies and their parameters")
    p.set_defaults(run=cmd_strategies)


def _add_scores(sub: Any) -> None:
    p = _command(sub, "scores", "per-layer contribution and block angular distances on a data sample")
    p.add_argument("model", help="hub id or local path (a SentenceTransformer folder works too)")
    _data_args(p, required=True)
    p.add_argument("--max-length", type=_positive_int, default=128, help="tokens per text; longer texts are cut")
    p.add_argument("--block-sizes", type=_positive_int, nargs="*", help="also list blocks of these sizes")
    p.add_argument("--json", action="store_true", help="print the full table as JSON")
    p.set_defaults(run=cmd_scores)


def _add_prune(sub: Any) -> None:
    p = _command(sub, "prune", "drop layers by a strategy and save the pruned model")
    p.add_argument("model", help="hub id or local path of the model to prune")
    p.add_argument("--strategy", required=True, help="see `prunetune strategies`")
    p.add_argument("--count", type=int, help="layers to drop")
    p.add_argument("--start", type=int, help="window: first dropped layer (0 = next to the embeddings)")
    p.add_argument("--start-fraction", type=float, help="window: where the block sits, 0 (bottom) to 1 (top)")
    p.add_argument("--threshold", type=float, help="contribution: drop layers with cosine(in,out) >= this")
    p.add_argument(
        "--layers",
        type=_layer_list,
        help="explicit: the layers to drop, e.g. 3,4,5",
    )
    p.add_argument("--output", "-o", required=True, help="folder to save the pruned model and tokenizer in")
    _data_args(p, required=False)
    p.set_defaults(run=cmd_prune)


def _add_finetune(sub: Any) -> None:
    p = _command(sub, "finetune", "one prune + fine-tune job from a YAML config (default: the embedded one)")
    p.add_argument("config", nargs="?", help="YAML TrialConfig (see examples/); omitted: MiniLM on IndicNews English")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one value, e.g. training.epochs=3")
    p.add_argument("--output", "-o", help="save the fine-tuned model and prunetune-result.json here")
    p.add_argument("--metrics", help="also write the final metrics as JSON to this file")
    p.add_argument(
        "--teacher-run",
        metavar="RUN_ID",
        help="distil from this MLflow run's model (e.g. a search's reference), re-created first; with distill.alpha",
    )
    p.add_argument("--tracking-uri", help="the MLflow store of --teacher-run; " + _TRACKING)
    p.set_defaults(run=cmd_finetune)


def _add_search(sub: Any) -> None:
    p = _command(sub, "search", "search which layers to drop, under an accuracy-drop budget (Ray Tune + Optuna)")
    p.add_argument("spec", nargs="?", help="YAML search spec (see examples/); omitted: the embedded default")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one value, e.g. num_trials=20")
    p.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted search of the same spec")
    p.add_argument("--register", metavar="NAME", help=_REGISTER)
    p.set_defaults(run=cmd_search)


_REGISTER = "also register the answer's model in MLflow's Model Registry under this name"
# A tolerance is read in the unit of the spec's budget (prunetune.records.budget_unit).
_TOLERANCE_UNIT = "0.01 = 1 point, or 1 % of the reference with budget.relative: true"  # help: % doubled
_TOLERANCES = (0.01, 0.02, 0.03)  # accuracy drops max-drop and report answer unless told (1, 2, 3 points)


def _add_max_drop(sub: Any) -> None:
    p = _command(sub, "max-drop", "the most layers droppable within each tolerance, re-checked over seeds")
    p.add_argument("spec", nargs="?", help="YAML search spec; omitted: the embedded default")
    p.add_argument(
        "--tolerance",
        type=_tolerance,
        nargs="+",
        default=list(_TOLERANCES),
        help=f"drops to answer, as the spec's budget.tolerance: {_TOLERANCE_UNIT.replace('%', '%%')}",
    )
    p.add_argument(
        "--seeds",
        type=_positive_int,
        help="decision seeds the reference and each finalist train on (default: the spec's, 5)",
    )
    p.add_argument("--json", action="store_true", help="print the answer as JSON instead of a table")
    p.add_argument("--output", "-o", help="also write the answer as JSON to this file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one spec value, e.g. num_trials=20")
    p.add_argument("--address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local Ray)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted max-drop of the same spec")
    p.add_argument("--register", metavar="NAME", help=_REGISTER + " (a version per tolerance's answer)")
    p.set_defaults(run=cmd_max_drop)


_SEARCH = "a spec file, a search's name (its latest run) or a search's parent run id"
_TRACKING = "MLflow store (default: the spec's, else $MLFLOW_TRACKING_URI, else ./prunetune-runs/mlflow.db)"


def _add_trials(sub: Any) -> None:
    p = _command(sub, "trials", "list, filter, sort and export the trials of a search (from MLflow)")
    p.add_argument("search", help=_SEARCH + "; with --all-searches, an experiment name")
    p.add_argument("--tracking-uri", help=_TRACKING)
    p.add_argument("--where", help='filter, e.g. "drop<=0.01 and (strategy=middle or strategy in [top, window])"')
    ranked = ",".join(f"-{column}" for column in records.RANKED_BY)
    p.add_argument("--sort", default=ranked, help="columns to sort by, - for descending")
    p.add_argument("--columns", help="columns to show, comma-separated (default: a short set; csv/json: all)")
    p.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table", help="output format")
    p.add_argument("--output", "-o", help="write to this file instead of the terminal")
    p.add_argument("--all-searches", action="store_true", help="every search of the experiment, not the latest")
    p.set_defaults(run=cmd_trials)


def _add_export(sub: Any) -> None:
    p = _command(sub, "export", "re-create the model of any recorded trial (or job) from its MLflow run")
    p.add_argument("run_id", help="the trial's MLflow run id (`prunetune trials SEARCH` lists them)")
    p.add_argument("--output", "-o", required=True, help="an empty folder for the model and its card")
    p.add_argument("--tracking-uri", help=_TRACKING)
    p.set_defaults(run=cmd_export)


def _add_report(sub: Any) -> None:
    p = _command(sub, "report", "one HTML report of a search: tables, plots, spec; logged to its parent run")
    p.add_argument("search", help=_SEARCH)
    p.add_argument("--tracking-uri", help=_TRACKING)
    p.add_argument(
        "--tolerance",
        type=_tolerance,
        nargs="+",
        default=list(_TOLERANCES),
        help=f"drops the tables answer, as the spec's budget.tolerance: {_TOLERANCE_UNIT.replace('%', '%%')}",
    )
    p.add_argument("--output", "-o", help="HTML file (default: <search>-report.html)")
    p.add_argument("--no-log", action="store_true", help="do not attach the report to the search's MLflow run")
    p.set_defaults(run=cmd_report)


def _add_data(sub: Any) -> None:
    p = _command(sub, "data", "list the data presets and fetch local copies of them")
    data = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    listing = _command(data, "list", "every preset, and whether the data dir holds a local copy of it")
    _data_dir_arg(listing)
    listing.set_defaults(run=cmd_data_list)
    fetching = _command(data, "fetch", "download a preset's files into the data dir (checksums checked)")
    fetching.add_argument("preset", help="a preset, e.g. indicnews:english:shc (see `prunetune data list`)")
    _data_dir_arg(fetching)
    fetching.set_defaults(run=cmd_data_fetch)


def joined_values(argv: list[str]) -> list[str]:
    """``--sort -val_score`` as ``--sort=-val_score``: argparse reads a value that starts with ``-`` as an option,
    and a descending sort column always does."""
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] == "--sort" and arg.startswith("-") and not arg.startswith("--"):
            joined[-1] = f"--sort={arg}"
        else:
            joined.append(arg)
    return joined


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(joined_values(argv))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        _quiet_libraries()
    try:
        with stops.handled():  # SIGINT and SIGTERM: one stop path, one line, 128 + signal
            return int(args.run(args))
    except KeyboardInterrupt as err:
        stop = err if isinstance(err, stops.Interrupted) else stops.interrupted()
        print(f"{_command_line(args)}: {_stopped_line(stop, args, argv)}", file=sys.stderr)
        return stop.exit_status
    except PrunetuneError as err:  # every expected failure: one line naming the problem and the fix
        print(f"{_command_line(args)}: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:  # an optional library imported directly, not through prunetune.lazy
        found = missing(err)
        if found is None:
            raise
        print(f"{_command_line(args)}: {found}", file=sys.stderr)
        return 2


def _stopped_line(stop: stops.Interrupted, args: argparse.Namespace, argv: list[str]) -> str:
    """What a stop signal ended, and for a search, the command that continues it."""
    line = f"interrupted by {signal.Signals(stop.signum).name}" + (f" {stop.done}" if stop.done else "")
    if args.command not in ("search", "max-drop"):
        return line
    again = shlex.join(["prunetune", *[a for a in argv if a != "--resume"], "--resume"])
    return f"{line}; nothing recorded is lost: continue with {again}"


def _command_line(args: argparse.Namespace) -> str:
    """``prunetune finetune``, ``prunetune data fetch``: what an error line starts with."""
    return " ".join(["prunetune", args.command, *([args.data_command] if args.command == "data" else [])])


if __name__ == "__main__":
    sys.exit(main())
