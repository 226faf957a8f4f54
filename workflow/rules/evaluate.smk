# Evaluation with lmms-eval: one job per checkpoint writes one JSON per benchmark (process
# start-up costs more than the tiny model's compute). The base is evaluated once and shared.

# Built-in lmms-eval benchmarks (registry `builtin: true`) load their own data: only our
# benchmarks have a parquet input. With resources.gpus > 1 the job runs data parallel under
# `accelerate launch` (one process per GPU), with resources.processes > 1 on CPU likewise over a
# gloo group (`--multi_gpu` is accelerate's name for its torchrun launcher); rank 0 writes the
# outputs. `--main_process_port 0`: a free port, so jobs on one node never collide.

EVAL_PARAMS = dict(
    benchmarks=" ".join(BENCHMARKS),
    limit=f"--limit {config['evaluation']['limit']}" if config["evaluation"]["limit"] else "",
    device=config["evaluation"]["device"],
    strict="--fail-on-empty" if config["evaluation"]["fail_on_empty"] else "",
    clock="--clock-exact-hours" if config["evaluation"].get("clock_exact_hours") else "",
    batch=f"--batch-size {config['evaluation'].get('batch_size', 1)}",
)
if RESOURCES["gpus"] > 1:
    EVAL_CMD = "accelerate launch --main_process_port 0 --num_processes {resources.gpu} -m lmmcl.cli evaluate"
elif CPU_PROCS > 1:
    EVAL_CMD = ("OMP_NUM_THREADS={resources.proc_threads} accelerate launch --multi_gpu --main_process_port 0 "
                "--num_processes {resources.processes} -m lmmcl.cli evaluate")
else:
    EVAL_CMD = "lmmcl evaluate"


rule evaluate_base:
    input:
        manifest=f"{RES}/base/manifest.json",
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        eval_outputs(f"{RES}/evals/base"),
    params:
        **EVAL_PARAMS,
        out_dir=f"{RES}/evals/base",
    threads: RESOURCES["eval_threads"] * CPU_PROCS
    resources:
        gpu=RESOURCES["gpus"],
        processes=CPU_PROCS,
        proc_threads=proc_threads,
    log:
        f"{RES}/logs/evals/base.log",
    shell:
        EVAL_CMD + " --manifest {input.manifest} --benchmarks {params.benchmarks} --data-root {DATA} "
        "--out-dir {params.out_dir} {params.limit} --device {params.device} {params.strict} {params.clock} "
        "{params.batch} --threads {resources.proc_threads} > {log} 2>&1"


rule evaluate_stage:
    input:
        manifest=f"{RES}/{{method}}/stage{{k}}_{{task}}/manifest.json",
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        eval_outputs(f"{RES}/evals/{{method}}/stage{{k}}_{{task}}"),
    params:
        **EVAL_PARAMS,
        out_dir=lambda w: f"{RES}/evals/{w.method}/stage{w.k}_{w.task}",
    threads: RESOURCES["eval_threads"] * CPU_PROCS
    resources:
        gpu=RESOURCES["gpus"],
        processes=CPU_PROCS,
        proc_threads=proc_threads,
    log:
        f"{RES}/logs/evals/{{method}}/stage{{k}}_{{task}}.log",
    shell:
        EVAL_CMD + " --manifest {input.manifest} --benchmarks {params.benchmarks} --data-root {DATA} "
        "--out-dir {params.out_dir} {params.limit} --device {params.device} {params.strict} {params.clock} "
        "{params.batch} --threads {resources.proc_threads} > {log} 2>&1"
