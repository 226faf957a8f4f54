"""`lmmcl <subcommand>`: what the Snakemake rules call. All logic lives in the package."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text[:80]!r}") from None


def cmd_make_data(a):
    from .data.synthetic import write_skill

    path = write_skill(a.skill, a.split, a.n, a.seed, a.out, image_size=a.image_size)
    print(f"wrote {a.n} {a.skill}/{a.split} examples to {path}")


def cmd_build_base(a):
    from .train.stage import build_base

    m = build_base(model_cfg=a.model, experiment=a.experiment, out_manifest=a.out, data=a.data or [],
                   hparams=a.hparams, seed=a.seed, threads=a.threads)
    _print_run(m, a.out)


def cmd_train_stage(a):
    from .train.stage import train_stage

    m = train_stage(parent_manifest=a.parent, data=a.data, out_manifest=a.out, method=a.method,
                    recipe=a.recipe, hparams=a.hparams, extra_recipes=a.recipes, stage=a.stage,
                    task=a.task, threads=a.threads)
    _print_run(m, a.out)


def _print_run(m: dict, out):
    tr = m.get("trainable") or {}
    met = m.get("metrics") or {}
    if tr:
        print(f"trainable: {tr['trainable_params']:,} / {tr['total_params']:,} parameters "
              f"({100 * tr['trainable_share']:.1f}%) in {tr['trainable_tensors']} tensors, recipe {tr['recipe']}")
    if met:
        print(f"trained {met['steps']} steps in {met['seconds']} s, loss {met['loss_first_log']:.3f} -> {met['loss_last_log']:.3f}")
    print(f"wrote {out}")


def cmd_evaluate(a):
    from .evaluation.run import evaluate
    from .models.io import checkpoint_of

    checkpoint = checkpoint_of(a.manifest) if a.manifest else a.checkpoint
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    paths = evaluate(checkpoint, a.benchmarks, a.data_root, a.out_dir, limit=a.limit, device=a.device,
                     fail_on_empty=a.fail_on_empty)
    for p in paths:
        s = json.loads(Path(p).read_text())
        empty = f", {s['n_empty']} empty" if s.get("n_empty") else ""
        print(f"{s['benchmark']:>16}: {s['metric']} = {s['score']:.1f}  (n={s['n']}{empty})")


def cmd_report(a):
    from .report.aggregate import format_summary, write_report

    write_report(a.results, a.plan)
    print(format_summary(a.results, a.plan))


def cmd_recipes(a):
    from . import recipes

    for name, spec in recipes.all_recipes().items():
        print(f"{name:14} {spec.get('description', '')}")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmmcl", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("make-data", help="generate one split of a synthetic skill (parquet)")
    s.add_argument("--skill", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("build-base", help="stage 0: build (and for the tiny family pre-train) the base model")
    s.add_argument("--experiment", required=True)
    s.add_argument("--model", type=_json_arg, required=True, help="config `model` block as JSON")
    s.add_argument("--hparams", type=_json_arg, default={})
    s.add_argument("--data", nargs="*", help="parquet splits to pre-train on (tiny family)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int)
    s.add_argument("--out", required=True, help="manifest.json to write")
    s.set_defaults(func=cmd_build_base)

    s = sub.add_parser("train-stage", help="train one stage from its parent's checkpoint")
    s.add_argument("--parent", required=True, help="parent manifest.json (previous stage or base)")
    s.add_argument("--data", nargs="+", required=True)
    s.add_argument("--method", required=True)
    s.add_argument("--recipe", required=True)
    s.add_argument("--recipes", type=_json_arg, default={}, help="user recipes (config `recipes`) as JSON")
    s.add_argument("--hparams", type=_json_arg, required=True)
    s.add_argument("--stage", type=int)
    s.add_argument("--task")
    s.add_argument("--threads", type=int)
    s.add_argument("--out", required=True, help="manifest.json to write")
    s.set_defaults(func=cmd_train_stage)

    s = sub.add_parser("evaluate", help="evaluate a checkpoint on benchmarks with lmms-eval")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--manifest", help="a stage or base manifest.json")
    g.add_argument("--checkpoint", help="a checkpoint folder")
    s.add_argument("--benchmarks", nargs="+", required=True)
    s.add_argument("--data-root", default="data")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--limit", type=int)
    s.add_argument("--device", default="cpu")
    s.add_argument("--threads", type=int)
    s.add_argument("--fail-on-empty", action="store_true",
                   help="error when every answer of a benchmark is empty (default: score 0 and warn)")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("report", help="scores.csv, tables and plots of one experiment")
    s.add_argument("--results", default="results", help="results root (outputs go to <results>/<experiment>/)")
    s.add_argument("--plan", type=_json_arg, required=True)
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("recipes", help="list the built-in recipes")
    s.set_defaults(func=cmd_recipes)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"lmmcl {args.cmd}: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
