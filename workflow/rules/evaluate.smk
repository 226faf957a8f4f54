# Evaluation with lmms-eval: one job per checkpoint writes one JSON per benchmark (process
# start-up costs more than the tiny model's compute). The base is evaluated once and shared.

# Built-in lmms-eval benchmarks (registry `builtin: true`) load their own data: only our
# benchmarks have a parquet input. With resources.gpus > 1 the job runs data parallel under
# `accelerate launch` (one process per GPU; rank 0 writes the outputs).

EVAL_PARAMS = dict(
    benchmarks=" ".join(BENCHMARKS),
    limit=f"--limit {config['evaluation']['limit']}" if config["evaluation"]["limit"] else "",
    device=config["evaluation"]["device"],
    strict="--fail-on-empty" if config["evaluation"]["fail_on_empty"] else "",
    clock="--clock-exact-hours" if config["evaluation"].get("clock_exact_hours") else "",
    batch=f"--batch-size {config['evaluation'].get('batch_size', 1)}",
)
EVAL_CMD = (
    f"accelerate launch --num_processes {RESOURCES['gpus']} -m lmmcl.cli evaluate"
    if RESOURCES["gpus"] > 1 else "lmmcl evaluate"
)


rule evaluate_base:
    input:
        manifest=LAYOUT.base_manifest("{seed}"),
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        eval_outputs(LAYOUT.eval_dir("{seed}", None, 0, None)),
    params:
        **EVAL_PARAMS,
        out_dir=lambda w: LAYOUT.eval_dir(w.seed, None, 0, None),
    threads: RESOURCES["eval_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.log("{seed}", "evals", "base"),
    shell:
        "{EVAL_CMD} --manifest {input.manifest} --benchmarks {params.benchmarks} --data-root {DATA} "
        "--out-dir {params.out_dir} {params.limit} --device {params.device} {params.strict} {params.clock} "
        "{params.batch} --threads {threads} > {log} 2>&1"


rule evaluate_stage:
    input:
        manifest=LAYOUT.stage_manifest("{seed}", "{method}", "{k}", "{task}"),
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        eval_outputs(LAYOUT.eval_dir("{seed}", "{method}", "{k}", "{task}")),
    params:
        **EVAL_PARAMS,
        out_dir=lambda w: LAYOUT.eval_dir(w.seed, w.method, w.k, w.task),
    threads: RESOURCES["eval_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.log("{seed}", "evals", "{method}", "stage{k}_{task}"),
    shell:
        "{EVAL_CMD} --manifest {input.manifest} --benchmarks {params.benchmarks} --data-root {DATA} "
        "--out-dir {params.out_dir} {params.limit} --device {params.device} {params.strict} {params.clock} "
        "{params.batch} --threads {threads} > {log} 2>&1"


rule evaluate_bases:
    """Target rule: the base evaluation of every run seed (`snakemake evaluate_bases`)."""
    input:
        [eval_outputs(LAYOUT.eval_dir(seed, None, 0, None)) for seed in SEEDS],
