"""Experiment tracking of every stage through the HF Trainer's own integrations (`report_to`).

Config `tracking` (config/README.md) chooses the integrations: `tensorboard` (the default,
offline), `wandb`, `mlflow`, or none. Each stage (and the tiny base) is one run:

- TensorBoard: event files in `<stage folder>/tensorboard/` (next to `model/`, never inside a
  delta), listed in the stage's manifest. `tensorboard --logdir results/<experiment>` shows one
  run per stage named `<method>/stage<k>_<task>/tensorboard`: filter by method, overlay stages
  (each starts at step 0).
- W&B: project `tracking.wandb.project` (default: the experiment), group = the method, run
  name `<method>/stage<k>_<task>`; `offline` by default: the run is written to
  `<stage folder>/wandb/` (`wandb sync` uploads it later), no network call.
- MLflow: experiment = the experiment name, run name `<method>/stage<k>_<task>`, tags
  `lmmcl.method`/`lmmcl.stage`/`lmmcl.task`; tracking URI `tracking.mlflow.tracking_uri`,
  default a local file store `results/<experiment>/mlruns` (no server, no network).

What is logged at every logging step (HF names, TensorBoard adds a `train/` prefix): `loss`,
`grad_norm`, `learning_rate`, `lr/<role>` (the learning rate of each trained role: vision
tower, projector, LLM layers, ...), `tokens_per_second` (non-padding input tokens per second
since the previous log), `num_input_tokens_seen`. Only rank 0 of a multi-process launch
writes (the integrations check `is_world_process_zero`).

This module imports nothing heavy: the config checks use it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

TRACKERS = ("tensorboard", "wandb", "mlflow")
DEFAULT_TRACKING = {"report_to": ["tensorboard"], "logging_steps": None,
                    "wandb": {"project": None, "mode": "offline", "entity": None},
                    "mlflow": {"tracking_uri": None}}
# the folder of each integration inside a stage folder (cleared when a stage starts afresh)
STAGE_FOLDERS = {"tensorboard": "tensorboard", "wandb": "wandb"}
# the Python module each integration needs, and the requirement that provides it
MODULES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
           "mlflow": ("mlflow", "mlflow-skinny")}


def normalize(spec: dict | None) -> dict:
    """Config `tracking` with defaults filled in; `report_to` as a list (`none` -> []).

    Raises ValueError naming the bad value and what is allowed."""
    spec = dict(spec or {})
    unknown = set(spec) - set(DEFAULT_TRACKING)
    if unknown:
        raise ValueError(f"tracking: unknown key(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_TRACKING)}")
    report_to = spec.get("report_to", DEFAULT_TRACKING["report_to"])
    if report_to is None or report_to == "none":
        report_to = []
    elif isinstance(report_to, str):
        report_to = [report_to]
    report_to = list(dict.fromkeys(report_to))
    bad = [r for r in report_to if r not in TRACKERS]
    if bad:
        raise ValueError(f"tracking.report_to: unknown integration(s) {bad}; allowed: {list(TRACKERS)} or 'none'")
    steps = spec.get("logging_steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise ValueError(f"tracking.logging_steps: {steps!r} is not a positive integer (or null = about 20 logs per stage)")
    out = {"report_to": report_to, "logging_steps": steps}
    for key in ("wandb", "mlflow"):
        sub = dict(spec.get(key) or {})
        extra = set(sub) - set(DEFAULT_TRACKING[key])
        if extra:
            raise ValueError(f"tracking.{key}: unknown key(s) {sorted(extra)}; allowed: {sorted(DEFAULT_TRACKING[key])}")
        out[key] = {**DEFAULT_TRACKING[key], **sub}
    if out["wandb"]["mode"] not in ("offline", "online"):
        raise ValueError(f"tracking.wandb.mode: {out['wandb']['mode']!r}; allowed: ['offline', 'online']")
    return out


def check_installed(spec: dict) -> None:
    """Every configured integration imports here (before a minutes-long model load)."""
    for name in normalize(spec)["report_to"]:
        module, requirement = MODULES[name]
        if importlib.util.find_spec(module) is None:
            raise ValueError(f"tracking.report_to: {name!r} needs the Python package {requirement!r}, which is not "
                             f"installed in this environment; install it or remove {name!r} from tracking.report_to")


def logging_steps(spec: dict, steps: int | None) -> int:
    """`tracking.logging_steps`, else about 20 logs per stage (every 5 steps when the stage's
    length is given in epochs)."""
    if spec.get("logging_steps"):
        return int(spec["logging_steps"])
    return max(1, (int(steps) if steps else 100) // 20)


def prepare_stage_dir(spec: dict, stage_dir: str | Path, resuming: bool) -> None:
    """A stage that starts afresh (no in-stage checkpoint to resume) drops the curves an earlier
    attempt left in its folder; a resumed one appends to them."""
    if resuming:
        return
    for name, folder in STAGE_FOLDERS.items():
        shutil.rmtree(Path(stage_dir) / folder, ignore_errors=True)


def set_environment(spec: dict, stage_dir: str | Path, *, experiment: str | None, group: str | None,
                    tags: dict | None = None):
    """Set the environment variables the HF integrations read for one stage; return them and a
    function that restores the previous values.

    TensorBoard writes to `<stage_dir>/tensorboard`; W&B (offline unless configured online) to
    `<stage_dir>/wandb`; MLflow to its tracking URI (default `file:<results>/<experiment>/mlruns`,
    the folder above the method folders)."""
    spec = normalize(spec)
    stage_dir = Path(stage_dir).resolve()
    env: dict[str, str] = {}
    if "tensorboard" in spec["report_to"]:
        env["TENSORBOARD_LOGGING_DIR"] = str(stage_dir / STAGE_FOLDERS["tensorboard"])
    if "wandb" in spec["report_to"]:
        w = spec["wandb"]
        env.update(WANDB_MODE=w["mode"], WANDB_DIR=str(stage_dir), WANDB_PROJECT=w["project"] or experiment or "lmmcl",
                   WANDB_RUN_GROUP=group or "base", WANDB_SILENT="true", WANDB_LOG_MODEL="false",
                   WANDB_WATCH="false", WANDB_DISABLE_GIT="true")
        if w["entity"]:
            env["WANDB_ENTITY"] = w["entity"]
    if "mlflow" in spec["report_to"]:
        import json

        uri = spec["mlflow"]["tracking_uri"] or mlflow_store(stage_dir, experiment).as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps its file store in maintenance mode and refuses it unless opted in;
            # a database store needs SQLAlchemy (not in mlflow-skinny): give a sqlite:/// or
            # http(s):// tracking_uri for one, with the packages it needs
            env["MLFLOW_ALLOW_FILE_STORE"] = "true"
        env.update(MLFLOW_TRACKING_URI=uri, MLFLOW_EXPERIMENT_NAME=experiment or "lmmcl",
                   MLFLOW_TAGS=json.dumps({f"lmmcl.{k}": str(v) for k, v in (tags or {}).items()}),
                   MLFLOW_FLATTEN_PARAMS="true")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    def restore():
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    return env, restore


@contextlib.contextmanager
def environment(spec: dict, stage_dir: str | Path, *, experiment: str | None, group: str | None,
                tags: dict | None = None):
    """:func:`set_environment` as a context manager."""
    env, restore = set_environment(spec, stage_dir, experiment=experiment, group=group, tags=tags)
    try:
        yield env
    finally:
        restore()


def mlflow_store(stage_dir: Path, experiment: str | None) -> Path:
    """results/<experiment>/mlruns: the experiment folder is the nearest ancestor named like it."""
    for parent in [stage_dir, *stage_dir.parents]:
        if experiment and parent.name == experiment:
            return parent / "mlruns"
    return stage_dir.parent / "mlruns"


def ensure_mlflow_experiment(env: dict) -> None:
    """Create the MLflow experiment once, under a file lock: two stages starting together would
    otherwise both create it (the HF callback creates a missing experiment on train begin)."""
    uri, name = env.get("MLFLOW_TRACKING_URI"), env.get("MLFLOW_EXPERIMENT_NAME")
    if not uri:
        return
    import mlflow
    from filelock import FileLock

    if uri.startswith("file:"):
        from urllib.parse import urlparse
        from urllib.request import url2pathname

        store = Path(url2pathname(urlparse(uri).path))
        store.mkdir(parents=True, exist_ok=True)
        lock = store.parent / f".{store.name}.lock"   # next to the store, not inside it
    else:
        lock = Path(tempfile.gettempdir()) / "lmmcl_mlflow_experiment.lock"
    with FileLock(str(lock)):
        mlflow.set_tracking_uri(uri)
        if mlflow.get_experiment_by_name(name) is None:
            mlflow.create_experiment(name)


def finish_runs(spec: dict) -> None:
    """End the W&B run the Trainer's callback left open (it keeps it for later evaluate() logs):
    the next stage trained in the same process would otherwise log into it. MLflow's callback
    ends the runs it started itself."""
    if "wandb" in normalize(spec)["report_to"]:
        import sys

        wandb = sys.modules.get("wandb")
        if wandb is not None:
            if getattr(wandb, "run", None) is not None:
                wandb.finish()
            wandb.teardown()  # its settings (WANDB_DIR, ...) are read once per setup: the next stage's anew


def stage_files(spec: dict, stage_dir: str | Path) -> list[str]:
    """The tracking files inside a stage folder, relative to it (sorted), for the manifest."""
    stage_dir = Path(stage_dir)
    files = []
    for name in normalize(spec)["report_to"]:
        folder = STAGE_FOLDERS.get(name)
        if folder and (stage_dir / folder).is_dir():
            files += [p.relative_to(stage_dir).as_posix() for p in (stage_dir / folder).rglob("*")
                      if p.is_file() and not p.is_symlink()]
    return sorted(files)


def manifest_record(spec: dict, stage_dir: str | Path, env: dict, run_name: str, logging_every: int) -> dict:
    spec = normalize(spec)
    rec = {"report_to": spec["report_to"], "run_name": run_name, "logging_steps": logging_every,
           "files": stage_files(spec, stage_dir)}
    if "wandb" in spec["report_to"]:
        rec["wandb"] = {k: env[v] for k, v in (("project", "WANDB_PROJECT"), ("group", "WANDB_RUN_GROUP"),
                                               ("mode", "WANDB_MODE"))}
    if "mlflow" in spec["report_to"]:
        rec["mlflow"] = {"tracking_uri": env["MLFLOW_TRACKING_URI"], "experiment": env["MLFLOW_EXPERIMENT_NAME"]}
    return rec
