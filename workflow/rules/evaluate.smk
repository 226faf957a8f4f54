# Evaluation with lmms-eval: one job per checkpoint writes one JSON per benchmark (process
# start-up costs more than the tiny model's compute). The base is evaluated once and shared.

# Built-in lmms-eval benchmarks (registry `builtin: true`) load their own data: only our
# benchmarks have a parquet input. With resources.gpus > 1 the job runs data parallel under
# `accelerate launch` (one process per GPU), with resources.processes > 1 on CPU likewise over a
# gloo group (`resources.launch`, rules/common.smk); rank 0 writes the outputs.

# EVAL_SETTINGS (rules/common.smk) as command-line arguments
EVAL_PARAMS = dict(
    benchmarks=" ".join(EVAL_SETTINGS["benchmarks"]),
    limit=f"--limit {EVAL_SETTINGS['limit']}" if EVAL_SETTINGS["limit"] else "",
    device=EVAL_SETTINGS["device"],
    strict="--fail-on-empty" if EVAL_SETTINGS["fail_on_empty"] else "",
    clock="--clock-exact-hours" if EVAL_SETTINGS["clock_exact_hours"] else "",
    batch=f"--batch-size {EVAL_SETTINGS['batch_size']}",
    data_root=lambda wildcards: DATA,
)
# evaluation.revisions pins built-in benchmarks' hub datasets: a param (changing a pin reruns the
# evaluations, not the training), added with its argument only when one is pinned, so that an
# experiment without pins keeps the same params and shell command (nothing reruns).
DATASET_REVISIONS = EVAL_SETTINGS.get("dataset_revisions", {})
if DATASET_REVISIONS:
    EVAL_PARAMS["revisions"] = " ".join(f"{b}={r}" for b, r in DATASET_REVISIONS.items())
REVISIONS_ARG = " --dataset-revisions {params.revisions}" if DATASET_REVISIONS else ""

rule evaluate_base:
    input:
        manifest=LAYOUT.base_manifest("{seed}"),
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        LAYOUT.eval_files("{seed}", None, 0, None, BENCHMARKS),
    params:
        **EVAL_PARAMS,
        **numerics_params("eval"),
        out_dir=out_dir_of(0),
    threads: RESOURCES["eval_threads"] * CPU_PROCS
    resources:
        **PROCESS_RESOURCES,
        launch=eval_launch,
    log:
        LAYOUT.eval_log("{seed}", None, 0, None),
    conda:
        CONDA_ENV
    shell:
        "{resources.launch} --manifest {input.manifest} --benchmarks {params.benchmarks} --data-root {params.data_root} "
        "--out-dir {params.out_dir} {params.limit} --device {params.device} {params.strict} {params.clock} "
        "{params.batch} --numerics {params.numerics} --threads {params.threads}" + REVISIONS_ARG + " > {log} 2>&1"


# A stage's evaluation: the base's rule on the stage's checkpoint. With evaluation.in_training_job
# the training job evaluates its stage (train.smk) and this rule is left with the stages of
# WiSE-FT methods, whose evaluated model is the merge job's.
use rule evaluate_base as evaluate_stage with:
    input:
        manifest=LAYOUT.stage_manifest("{seed}", "{method}", "{k}", "{task}"),
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        LAYOUT.eval_files("{seed}", "{method}", "{k}", "{task}", BENCHMARKS),
    wildcard_constraints:
        method=methods_regex(merged=True) if IN_JOB_EVAL else "|".join(map(re.escape, PLAN.methods)),
    log:
        LAYOUT.eval_log("{seed}", "{method}", "{k}", "{task}"),


rule evaluate_bases:
    """Target rule: the base evaluation of every run seed (`snakemake evaluate_bases`)."""
    input:
        [LAYOUT.eval_files(seed, None, 0, None, BENCHMARKS) for seed in SEEDS],
