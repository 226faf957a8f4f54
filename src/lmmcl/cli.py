"""`lmmcl <subcommand>`: what the Snakemake rules call. All logic lives in the package."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import timing
from .atomic import WriteFailed
from .train.preemption import EXIT_PREEMPTED, Preempted  # stdlib only
from .models.delta import FORMATS as CHECKPOINT_FORMATS  # stdlib-only module: --help stays fast


def _json_arg(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not valid JSON ({e}): {text[:80]!r}") from None


def cmd_make_data(a):
    from .data.skills import write_skill

    path = write_skill(a.skill, a.split, a.n, a.seed, a.out, image_size=a.image_size)
    print(f"wrote {a.n} {a.skill}/{a.split} examples to {path}")


def cmd_convert(a):
    from .data.sources import convert

    opts = dict(a.options or {})
    for key in ("seed", "limit"):
        if getattr(a, key) is not None:
            opts[key] = getattr(a, key)
    report = convert(a.dataset, a.out_dir, **opts)
    print(report.summary())
    print(f"wrote {a.out_dir}/<split>.parquet and {a.out_dir}/report.json")


def cmd_skill(a):
    """`lmmcl skill convert|check|words`: a config's own skills (lmmcl.data.declared, docs/own_skill.md)."""
    from .data import declared

    if a.skill_cmd == "convert":  # what the rules convert_skill_<name> / benchmark_skill_<name> run
        if a.spec.get("name") != a.name:
            raise ValueError(f"--spec is the declaration of skill {a.spec.get('name')!r}, not {a.name!r}")
        record = declared.convert(a.spec, a.split, a.out_dir)
        print(f"{a.name}: wrote {record['splits'][a.split]['examples']} {a.split} examples to {a.out_dir}/{a.split}.parquet")
        return
    from .config import Plan, load_configfiles

    plan = Plan(load_configfiles(a.configfile))  # the planning checks (row texts, files, words)
    if a.skill_cmd == "words":
        words = plan.skill_words()
        vocab, source = declared.vocabulary(words)
        if vocab is None:
            print(f"{source if words else 'the tokenizer of model.family'} reads any text: a declared skill's words "
                  f"are not checked")
            return
        words = sorted({w.strip() for w in vocab if w.strip() and not w.startswith("<")}, key=lambda w: (w.lower(), w))
        print(f"# {len(words)} words and marks of {source}")
        print(" ".join(words))
        return
    names = a.names or list(plan.skills)
    unknown = sorted(set(names) - set(plan.skills))
    if unknown or not names:
        raise ValueError(f"no declared skill {unknown or ''} in {' '.join(a.configfile)}; its skills: {sorted(plan.skills)}")
    for name in names:  # everything the conversions check, the images decoded, nothing written
        decl = plan.skills[name]
        out = declared.read(decl, decode=tuple(decl["outputs"]))
        print(f"{declared.describe(decl, out)}: OK")


def cmd_build_base(a):
    with timing.phase("imports"):
        from .train.stage import build_base

    m = build_base(model_cfg=a.model, experiment=a.experiment, out_manifest=a.out, data=a.data or [],
                   hparams=a.hparams, seed=a.seed, threads=a.threads, tracking=a.tracking)
    _print_run(m, a.out)


def cmd_train_stage(a):
    with timing.phase("imports"):
        from .train.stage import train_stage

    m = train_stage(parent_manifest=a.parent, data=a.data, out_manifest=a.out, method=a.method,
                    recipe=a.recipe, hparams=a.hparams, extra_recipes=a.recipes, stage=a.stage,
                    task=a.task, threads=a.threads, method_spec=a.method_spec, deepspeed=a.deepspeed,
                    checkpoint_format=a.checkpoint_format, tracking=a.tracking)
    if m:  # empty on the non-zero ranks of a multi-GPU launch
        _print_run(m, a.out)
    if a.evaluate and m:
        _evaluate_in_training_job(a.out, a.evaluate, a.numerics)


# the keys of train-stage --evaluate: lmmcl.evaluation.run.evaluate's, and the evaluation's threads
IN_JOB_EVAL_KEYS = {"benchmarks", "data_root", "out_dir", "limit", "device", "fail_on_empty", "batch_size",
                    "clock_exact_hours", "dataset_revisions", "threads"}


def _evaluate_in_training_job(manifest: str, spec: dict, numerics_mode: str | None):
    """config evaluation.in_training_job: the stage just written, evaluated by this process as
    `lmmcl evaluate --manifest` would (it loads the checkpoint from disk: the same weights and
    answers), without a second process's start-up, imports and numerics set-up."""
    unknown = set(spec) - IN_JOB_EVAL_KEYS
    missing = {"benchmarks", "out_dir"} - set(spec)
    if unknown or missing:
        raise ValueError(f"--evaluate: unknown key(s) {sorted(unknown)} / missing {sorted(missing)}; "
                         f"allowed: {sorted(IN_JOB_EVAL_KEYS)}")
    from . import numerics
    from .evaluation.run import evaluate
    from .models.io import resolve_checkpoint

    opts = dict(spec)
    threads = opts.pop("threads", None)
    if threads:
        numerics.configure(numerics_mode, threads)  # the evaluation jobs' thread count (resources.eval_threads)
    with timing.phase("evaluate"):
        paths = evaluate(resolve_checkpoint(manifest), opts.pop("benchmarks"), opts.pop("data_root", "data"),
                         opts.pop("out_dir"), in_training_job=True, **opts)
    _print_evaluations(paths)


def cmd_merge_stage(a):
    from .train.methods.wise_ft import merge_stage

    m = merge_stage(previous_manifest=a.previous, finetuned_manifest=a.finetuned, out_manifest=a.out,
                    alpha=a.alpha, threads=a.threads, checkpoint_format=a.checkpoint_format)
    print(f"merged {m['wise_ft']['merged_tensors']} tensors: {a.alpha} x previous + {1 - a.alpha:g} x finetuned")
    print(f"wrote {a.out}")


def cmd_export(a):
    from .models import delta
    from .models.io import export_checkpoint, resolve_checkpoint

    ckpt = resolve_checkpoint(a.checkpoint)
    root, deltas = delta.chain(ckpt)  # a hub id or full folder is its own root
    out = export_checkpoint(ckpt, a.out, dtype=a.dtype)
    print(f"composed {root} + {len(deltas)} delta(s) -> standalone checkpoint {out} "
          f"({delta.folder_bytes(out) / 2**20:.1f} MiB)")


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
    from .evaluation import standalone
    from .models.io import resolve_checkpoint

    given = [x for x in (a.target, a.manifest, a.checkpoint) if x]
    if len(given) != 1:
        raise ValueError("give exactly one of: CHECKPOINT (positional), --manifest, --checkpoint")
    checkpoint = resolve_checkpoint(given[0])
    out_dir = a.out_dir or standalone.default_out_dir(checkpoint)
    builtin_data = standalone.parse_builtin_data(a.builtin_data)
    revisions = standalone.parse_dataset_revisions(a.dataset_revisions)
    standalone.set_hub_env(checkpoint, a.benchmarks, builtin_data)  # before any HF import
    from .evaluation.run import evaluate

    paths = evaluate(checkpoint, a.benchmarks, a.data_root, out_dir, limit=a.limit, device=a.device,
                     fail_on_empty=a.fail_on_empty, batch_size=a.batch_size,
                     clock_exact_hours=a.clock_exact_hours, builtin_data=builtin_data, dataset_revisions=revisions)
    _print_evaluations(paths)


def _print_evaluations(paths):
    for p in paths:
        s = json.loads(Path(p).read_text())
        empty = f", {s['n_empty']} empty" if s.get("n_empty") else ""
        score = "n/a" if s["score"] is None else f"{s['score']:.1f}"
        print(f"{s['benchmark']:>16}: {s['metric']} = {score}  (n={s['n']}{empty}) -> {p}")


def cmd_report(a):
    if a.across:
        from .report.across import write_across

        if not a.out:
            raise ValueError("--across needs --out DIR (where the cross-experiment table goes)")
        for path in write_across(a.across, a.out):
            print(f"wrote {path}")
        return
    if a.plan is None:
        raise ValueError("give --plan JSON (one experiment) or --across EXPERIMENT_DIR ... --out DIR")
    from .report.aggregate import write_report
    from .report.summary import format_summary

    write_report(a.results, a.plan)
    print(format_summary(a.results, a.plan))


def cmd_gallery(a):
    from .data.skills import register_saved
    from .report.gallery import summary_line, write_gallery

    plan_benchmarks = [b for g in ("target", "held_out", "extra") for b in (a.plan or {}).get(g) or []]
    register_saved(a.data_root, plan_benchmarks)  # a config's own skills: their test parquet under data_root

    outs = write_gallery(a.results, a.plan, a.data_root, a.out_dir, n=a.examples)
    print(summary_line(outs))


def cmd_probe_numbers(a):
    from .probes.common import parse_labelled
    from .probes.numbers import probe_numbers

    res = probe_numbers(a.base, parse_labelled(a.checkpoints), {"target": a.target, "heldout": a.heldout},
                        a.out_json, a.out_png, n=a.n, max_new_tokens=a.max_new_tokens, device=a.device)
    for label, d in res["delta_vs_base"].items():
        print(f"{label}: number-token mass vs base: " + ", ".join(
            f"{role} {100 * v['avg_total_number_prob_mean']:+.2f} pp" for role, v in d.items()))
    print(f"wrote {a.out_json} and {a.out_png}")


def cmd_probe_layers(a):
    from .probes.common import parse_labelled
    from .probes.layers import probe_layers

    res = probe_layers(a.base, parse_labelled(a.checkpoints), a.data, a.out_json, a.out_png, n=a.n, device=a.device)
    for label, r in res["checkpoints"].items():
        print(f"{label}: attn " + " ".join(f"{v:.3g}" for v in r["sa_mean"]) + " | mlp "
              + " ".join(f"{v:.3g}" for v in r["mlp_mean"]))
    print(f"wrote {a.out_json} and {a.out_png}")


def cmd_fingerprint(a):
    from . import fingerprint as fp

    reference = fp.read(a.reference) if a.reference else None  # a missing file fails before the work
    print("# machine")
    for line in fp.machine():
        print(line)
    here = fp.conditions()
    for k, v in here.items():
        print(f"condition {k}: {v}")
    print(f"# data, initial model, base after N steps (numerics: portable, {fp.THREADS} threads): sha256[:32]", flush=True)
    lines = fp.compute(a.steps, progress=lambda line: print(line, flush=True))
    if reference is not None:
        status, text = fp.verdict(reference, lines, here, name=str(a.reference))
        print(text)
        if status:
            sys.exit(status)


def cmd_recipes(a):
    from . import recipes

    if a.table:
        print(recipes.format_count_table(recipes.count_table(a.family or None)))
        return
    for name, spec in recipes.all_recipes().items():
        print(f"{name:14} {spec.get('description', '')}")


def cmd_families(a):
    from .models import families as fams

    if a.suggest:
        from .models.suggest import suggest_entry

        print(suggest_entry(a.suggest, a.name))
        return
    if a.check:
        from . import recipes
        from .models.meta import build_meta

        bad = 0
        for name in a.check:
            model = build_meta(name)
            fam = fams.get_family(name)
            problems = fams.check_roles([n for n, _ in model.named_parameters(remove_duplicate=False)], fam)
            problems += recipes.check_recipes([n for n, _ in model.named_parameters()], fam)
            bad += bool(problems)
            print(f"{name}: " + ("role map and recipes OK" if not problems else "\n  ".join(["PROBLEMS"] + problems)))
        if bad:
            raise ValueError(f"{bad} family(ies) with problems (above)")
        return
    for fam in fams.FAMILIES.values():
        builder = "module" if fam.build_tiny and fam.build_tiny.__module__ != fams.__name__ else "YAML (generic)"
        published = f"{fam.published_params / 1e9:.2f}B" if fam.published_params else "-"
        print(f"{fam.name:16} {fam.model_class:42} {fam.default_checkpoint or '(tiny, built in code)':40} "
              f"{published:>7}  tiny builder: {builder}")


def cmd_ship_base(a):
    from .models.shipped import ship

    out = ship(a.manifest, a.out)
    print(f"shipped {a.manifest} -> {out}/model (+ manifest.json)")


def cmd_resources(a):
    from . import resources_estimate as est
    from .config import Plan, load_configfiles

    opts = est.Options(gpu_memory_gib=a.gpu_memory_gib, peak_tflops=a.peak_tflops, mfu=a.mfu,
                       text_tokens=a.text_tokens, image_size=est.parse_size(a.image_size) if a.image_size else None,
                       mean_image_size=est.parse_size(a.mean_image_size), train_examples=est.parse_examples(a.train_examples))
    result = est.estimate(Plan(load_configfiles(a.configfile)), opts)
    if a.json:
        print(json.dumps(result, indent=1))
        for w in result["warnings"]:
            print(w, file=sys.stderr)
    else:
        print(est.format_text(result, " ".join(a.configfile)))
    if a.strict and result["warnings"]:
        sys.exit(1)


def _probe_args(s):
    """The arguments both probes take: what to compare, how many samples, where to write."""
    s.add_argument("--base", required=True, help="base manifest.json or checkpoint folder")
    s.add_argument("--checkpoints", nargs="+", required=True, metavar="[LABEL=]PATH",
                   help="stage manifest.json files or checkpoint folders")
    s.add_argument("--n", type=int, default=32, help="first N samples of each parquet")
    s.add_argument("--device", default="cpu")
    _numerics_args(s)
    s.add_argument("--out-json", required=True)
    s.add_argument("--out-png", required=True)


def _numerics_args(s, threads=True):
    """How this process computes on the CPU (lmmcl.numerics): set before torch is imported."""
    s.add_argument("--numerics", choices=["portable", "native"], default=None,
                   help="portable (default, or $LMMCL_NUMERICS): the same bits on every x86-64 CPU with AVX2+FMA and the same glibc; native: "
                        "torch's CPU defaults (faster on AVX-512, numbers depend on the CPU)")
    if threads:
        s.add_argument("--threads", type=int, help="torch threads of this process (part of the numbers: keep it fixed)")


def _tracking_arg(s):
    s.add_argument("--tracking", type=_json_arg, default=None,
                   help='config `tracking` as JSON, e.g. \'{"report_to": ["tensorboard"]}\' (the default); '
                        '\'{"report_to": []}\' logs nowhere')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lmmcl", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    for add_commands in (_data_commands, _training_commands, _evaluation_commands, _report_commands):
        add_commands(sub)
    return p


def _data_commands(sub):
    """make-data, convert: the dataset splits."""
    s = sub.add_parser("make-data", help="generate one split of a synthetic skill (parquet)")
    s.add_argument("--skill", required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--image-size", type=int, default=32)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_make_data)

    s = sub.add_parser("convert", help="download/convert a real dataset into <out-dir>/<split>.parquet + report.json")
    s.add_argument("dataset", help="a dataset of registry/datasets.yaml (cub200, pixmocount, pathvqa, ...)")
    s.add_argument("--out-dir", required=True)
    s.add_argument("--seed", type=int)
    s.add_argument("--limit", type=int, help="keep only the first N usable examples per split")
    s.add_argument("--options", type=_json_arg, default={}, help="config data.sources.<dataset> as JSON")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("skill", help="a config's own skills (`skills:`): convert one split, check them, list the "
                       "tiny tokenizer's words (docs/own_skill.md)")
    ss = s.add_subparsers(dest="skill_cmd", required=True)
    c = ss.add_parser("convert", help="write one split of a declared skill (what its Snakemake rules run)")
    c.add_argument("name")
    c.add_argument("--split", choices=["train", "test"], required=True)
    c.add_argument("--spec", type=_json_arg, required=True, help="the skill's checked declaration (the rule's params)")
    c.add_argument("--out-dir", required=True)
    c = ss.add_parser("check", help="read every row of the declared skills (images decoded), write nothing")
    c.add_argument("names", nargs="*", help="skills to check (default: all of the config)")
    c.add_argument("--configfile", nargs="+", default=["config/config.yaml"])
    c = ss.add_parser("words", help="the words the tiny model's word-level tokenizer knows (a declared skill may "
                      "use only these)")
    c.add_argument("--configfile", nargs="+", default=["config/config.yaml"])
    s.set_defaults(func=cmd_skill)

    s = sub.add_parser("prefetch", help="fill the Hugging Face cache with the checkpoint and built-in benchmark "
                       "datasets a config's compute jobs load offline (run it where there is internet)")
    s.add_argument("--configfile", nargs="+", default=["config/config.yaml"],
                   help="config YAML(s), merged in order as Snakemake does (default: config/config.yaml)")
    s.add_argument("--dry-run", action="store_true", help="list what is cached and what would be fetched; no network")
    s.set_defaults(func=cmd_prefetch)


def cmd_prefetch(a):
    from .prefetch import run

    run(a.configfile, dry_run=a.dry_run, out=lambda line: print(line, flush=True))


def _training_commands(sub):
    """build-base, train-stage, merge-stage, export: the checkpoints."""
    s = sub.add_parser("build-base", help="stage 0: build (and for the tiny family pre-train) the base model")
    s.add_argument("--experiment", required=True)
    s.add_argument("--model", type=_json_arg, required=True, help="config `model` block as JSON")
    s.add_argument("--hparams", type=_json_arg, default={})
    s.add_argument("--data", nargs="*", help="parquet splits to pre-train on (tiny family)")
    s.add_argument("--seed", type=int, default=0)
    _numerics_args(s)
    s.add_argument("--out", required=True, help="manifest.json to write")
    _tracking_arg(s)
    s.set_defaults(func=cmd_build_base)

    s = sub.add_parser("ship-base", help="copy a finished tiny base (model/ + manifest) into the repository, "
                       "e.g. pretrained/tiny_default (make pretrain)")
    s.add_argument("manifest", help="the base's manifest.json, e.g. results/pretrain_tiny/seed0/base/manifest.json")
    s.add_argument("--out", required=True, help="folder to write: <out>/model and <out>/manifest.json")
    s.set_defaults(func=cmd_ship_base)

    s = sub.add_parser("fingerprint", help="the default's data, initial model and first steps as sha256: where this machine "
                       "stands against the reference numbers (docs/reproducibility.md)")
    s.add_argument("--steps", type=int, nargs="+", default=[1, 2, 10, 100], help="base pre-training steps to hash")
    s.add_argument("--reference", type=Path, help="compare with this fingerprint file (e.g. "
                   "benchmarks/reference/fingerprint.txt); exit status 1 at a difference inside its condition")
    s.set_defaults(func=cmd_fingerprint, numerics="portable", threads=2)

    s = sub.add_parser("train-stage", help="train one stage from its parent's checkpoint")
    s.add_argument("--parent", required=True, help="parent manifest.json (previous stage or base)")
    s.add_argument("--data", nargs="+", required=True)
    s.add_argument("--method", required=True)
    s.add_argument("--recipe", required=True)
    s.add_argument("--recipes", type=_json_arg, default={}, help="user recipes (config `recipes`) as JSON")
    s.add_argument("--hparams", type=_json_arg, required=True)
    s.add_argument("--stage", type=int)
    s.add_argument("--task")
    _numerics_args(s)
    s.add_argument("--method-spec", type=_json_arg, default=None,
                   help="training method and its keys as JSON (lmmcl.train.methods), default plain SFT")
    s.add_argument("--out", required=True, help="manifest.json to write")
    s.add_argument("--deepspeed", help="DeepSpeed JSON (config/deepspeed/zero2.json, zero3.json) for multi-GPU runs")
    s.add_argument("--checkpoint-format", choices=CHECKPOINT_FORMATS, default="delta",
                   help="delta: store only the tensors that differ from the parent (default); full: standalone")
    _tracking_arg(s)
    s.add_argument("--evaluate", type=_json_arg, default=None,
                   help="then evaluate the stage in this process (config evaluation.in_training_job), as JSON: "
                        "benchmarks, out_dir, and optionally data_root, limit, device, batch_size, fail_on_empty, "
                        "clock_exact_hours, dataset_revisions, threads")
    s.set_defaults(func=cmd_train_stage)

    s = sub.add_parser("merge-stage", help="WiSE-FT: alpha x previous model + (1 - alpha) x finetuned stage")
    s.add_argument("--previous", required=True, help="manifest.json of the previous (merged) model or the base")
    s.add_argument("--finetuned", required=True, help="manifest.json of the stage trained from it")
    s.add_argument("--alpha", type=float, required=True, help="weight of the previous model")
    _numerics_args(s)
    s.add_argument("--out", required=True, help="manifest.json of the merged stage to write")
    s.add_argument("--checkpoint-format", choices=CHECKPOINT_FORMATS, default="delta")
    s.set_defaults(func=cmd_merge_stage)

    s = sub.add_parser("export", help="write a standalone checkpoint (base + all deltas) of a stage")
    s.add_argument("checkpoint", help="stage manifest.json, stage folder or checkpoint folder")
    s.add_argument("--out", required=True, help="folder to write (save_pretrained layout)")
    s.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    _numerics_args(s, threads=False)
    s.set_defaults(func=cmd_export)


def _evaluation_commands(sub):
    """evaluate: lmms-eval on a checkpoint."""
    s = sub.add_parser("evaluate", help="evaluate a checkpoint on benchmarks with lmms-eval")
    s.add_argument("target", nargs="?", metavar="CHECKPOINT",
                   help="checkpoint folder, hub id, stage folder or manifest.json (standalone use)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--manifest", help="a stage or base manifest.json")
    g.add_argument("--checkpoint", help="a checkpoint folder or hub id")
    s.add_argument("--benchmarks", nargs="+", required=True, help="registry benchmarks (src/lmmcl/registry/benchmarks.yaml)")
    s.add_argument("--data-root", default="data")
    s.add_argument("--out-dir", help="default: results/standalone/<last two parts of the checkpoint>")
    s.add_argument("--batch-size", type=int, default=1, help="prompts per generate call (left-padded)")
    s.add_argument("--clock-exact-hours", action="store_true",
                   help="score clock hours exactly as the study did (default: modulo 12)")
    s.add_argument("--builtin-data", nargs="*", metavar="BENCHMARK=PARQUET",
                   help="run built-in benchmarks on local parquet in their lmms-eval columns (offline)")
    s.add_argument("--dataset-revisions", nargs="*", metavar="BENCHMARK=REVISION",
                   help="load built-in benchmarks' hub datasets at this revision (commit sha, tag, branch; "
                        "config evaluation.revisions)")
    s.add_argument("--limit", type=int)
    s.add_argument("--device", default="cpu")
    _numerics_args(s)
    s.add_argument("--fail-on-empty", action="store_true",
                   help="error when every answer of a benchmark is empty (default: score 0 and warn)")
    s.set_defaults(func=cmd_evaluate)


def _report_commands(sub):
    """report, gallery, the probes, recipes, families: what the runs show and what they run on."""
    s = sub.add_parser("report", help="scores.csv, tables and plots of one experiment")
    s.add_argument("--results", default="results", help="results root (outputs go to <results>/<experiment>/)")
    s.add_argument("--plan", type=_json_arg, help="report plan JSON of one experiment")
    s.add_argument("--across", nargs="+", metavar="EXPERIMENT_DIR",
                   help="instead: one learning/forgetting table across these results/<experiment> folders")
    s.add_argument("--out", help="output folder of --across")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("gallery", help="answer gallery: fixed test examples with every method's answer after every stage")
    s.add_argument("--results", default="results", help="results root (the experiment is a sub-folder)")
    s.add_argument("--plan", type=_json_arg, required=True, help="report plan JSON of one experiment")
    s.add_argument("--data-root", default="data", help="where the test parquet (the images) live")
    s.add_argument("--examples", type=int, default=4, help="examples per benchmark (default 4)")
    s.add_argument("--out-dir", required=True, help="writes gallery.html, gallery.json, <benchmark>.png here")
    s.set_defaults(func=cmd_gallery)

    s = sub.add_parser("probe-numbers", help="number-token probe (counting bias) of checkpoints vs. the base")
    _probe_args(s)
    s.add_argument("--target", required=True, help="parquet of the counting prompts")
    s.add_argument("--heldout", required=True, help="parquet of the held-out prompts")
    s.add_argument("--max-new-tokens", type=int, default=32)
    s.set_defaults(func=cmd_probe_numbers)

    s = sub.add_parser("probe-layers", help="per-layer attention/MLP contribution of checkpoints vs. the base")
    _probe_args(s)
    s.add_argument("--data", required=True, help="parquet with question + answer (teacher-forced)")
    s.set_defaults(func=cmd_probe_layers)

    s = sub.add_parser("recipes", help="list the built-in recipes (--table: counts per model family)")
    s.add_argument("--table", action="store_true",
                   help="trainable parameters of every recipe on each family's default checkpoint "
                        "(built on the meta device from the shipped config.json; no weights)")
    s.add_argument("--family", nargs="*", help="with --table: only these families (default: all real ones)")
    s.set_defaults(func=cmd_recipes)

    s = sub.add_parser("families", help="list the model families (--suggest: a role map for a new one, --check: "
                       "prove role maps on the meta device)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--suggest", metavar="CLASS_OR_FOLDER",
                   help="print a families.yaml entry with the role map read from the module tree (meta device) of a "
                        "transformers class (e.g. Qwen3VLForConditionalGeneration) or a checkpoint folder's config.json")
    g.add_argument("--check", nargs="+", metavar="FAMILY",
                   help="check these families' role maps and the built-in recipes on their meta-device models")
    s.add_argument("--name", help="with --suggest: the family name of the entry (default: the model type)")
    s.set_defaults(func=cmd_families)

    from . import resources_estimate as est  # standard library only at import: --help stays fast

    s = sub.add_parser("resources", help="GPU memory per GPU, checkpoint bytes and GPU-hours of every training job "
                       "of a config, from meta-device parameter counts (no weights; docs/resources.md)")
    s.add_argument("--configfile", nargs="+", required=True, help="config YAML(s), merged in order as Snakemake does")
    s.add_argument("--gpu-memory-gib", type=float, default=est.DEFAULT_GPU_MEMORY_GIB,
                   help=f"GPU memory; a job above it gets a WARNING (default {est.DEFAULT_GPU_MEMORY_GIB:g})")
    s.add_argument("--strict", action="store_true", help="exit status 1 when any job exceeds --gpu-memory-gib")
    s.add_argument("--json", action="store_true", help="every job and assumption as JSON")
    s.add_argument("--peak-tflops", type=float, default=est.DEFAULT_PEAK_TFLOPS,
                   help=f"GPU peak dense bf16 TFLOP/s (default {est.DEFAULT_PEAK_TFLOPS:g}: H100 SXM)")
    s.add_argument("--mfu", type=float, default=est.DEFAULT_MFU, help=f"model FLOPs utilisation (default {est.DEFAULT_MFU:g})")
    s.add_argument("--text-tokens", type=int, help=f"text tokens per example (default {est.DEFAULT_TEXT_TOKENS}; "
                   f"tiny_llava {est.TINY_TEXT_TOKENS})")
    s.add_argument("--image-size", help="HxW of the largest image (memory); default: every anyres pinpoint of the "
                   "family's config, 2304x2304 for qwen2_5_vl")
    s.add_argument("--mean-image-size", default="x".join(map(str, est.MEAN_IMAGE)),
                   help="HxW of the typical image behind the GPU-hours (default %(default)s)")
    s.add_argument("--train-examples", nargs="*", metavar="TASK=N",
                   help="train-split sizes (default: the converted parquet, the config, published sizes)")
    s.set_defaults(func=cmd_resources)


def _close_process_group() -> bool:
    """End a multi-process run (torchrun, accelerate launch) in step: every rank waits at a barrier,
    then the process group is destroyed before the interpreter exits. True if there was one."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
        return True
    return False


def _exit_after_success() -> None:
    """Leave a finished multi-process run without the C++ exit-time destructors. Even after the
    process group is gone, a rank can abort there ("terminate called without an active exception":
    a communication or DeepSpeed helper thread still joinable; SIGABRT after its work was written,
    seen on a ZeRO-3 LwF stage), and the launcher then reports the job failed. Python's own exit
    handlers (tracking writers, logging) still run; the outputs are already written atomically."""
    import atexit
    import logging
    import os

    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv=None):
    timing.mark_startup()
    args = build_parser().parse_args(argv)
    from .hubcache import enter_job

    enter_job(args.cmd)  # a workflow compute job runs offline (config hub_offline_jobs), before any HF import
    try:
        if hasattr(args, "numerics"):  # a command that computes: its numerics before torch loads
            from . import numerics

            try:
                with timing.phase("configure"):  # imports torch
                    numerics.configure(args.numerics, getattr(args, "threads", None))
            except RuntimeError as e:
                raise ValueError(str(e)) from None
            from .allocation import check_gpu_allocation

            check_gpu_allocation()  # under a launcher: a GPU for each process of this node, or a clear error
        args.func(args)
        if _close_process_group():
            _exit_after_success()
    except (ValueError, FileNotFoundError, WriteFailed) as e:
        print(f"lmmcl {args.cmd}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Preempted as e:
        print(f"lmmcl {args.cmd}: {e}", file=sys.stderr)
        sys.exit(EXIT_PREEMPTED)


if __name__ == "__main__":
    main()
