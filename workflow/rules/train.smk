# Training: the base (stage 0) and one job per (method, stage). A stage's hyperparameters are
# its `params`, so changing one stage's config reruns that stage and what depends on it only.


def base_data(wildcards):
    if config["model"]["family"] != "tiny_llava":
        return []
    skills = config["model"].get("base_training", {}).get("skills") or PLAN.held_out
    return [train_split(s) for s in skills]


rule build_base:
    """Stage 0: the tiny base pre-trained on the held-out skills, or a pointer to a real checkpoint."""
    input:
        data=base_data,
    output:
        f"{RES}/base/manifest.json",
    params:
        model=dumps(config["model"]),
        hparams=dumps(config["model"].get("base_training", {}).get("hparams", {})),
        seed=config["seed"],
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        f"{RES}/logs/base.log",
    shell:
        "lmmcl build-base --experiment {EXP} --model {params.model:q} --hparams {params.hparams:q} "
        "--data {input.data} --seed {params.seed} --threads {threads} --tracking {TRACKING:q} --out {output} > {log} 2>&1"


def _deepspeed_arg():
    """`--deepspeed <json>` from resources.deepspeed: zero2 / zero3 (config/deepspeed/) or a path."""
    ds = RESOURCES.get("deepspeed")
    if not ds:
        return ""
    path = Path(workflow.basedir).parent / "config" / "deepspeed" / f"{ds}.json" if ds in ("zero2", "zero3") else Path(ds)
    if not path.is_file():
        sys.exit(f"Config error: resources.deepspeed: {ds!r} is neither zero2, zero3 nor an existing JSON file")
    return f"--deepspeed {path}"


# One process per GPU (torchrun, GPU count from the rule's `resources.gpu`) when GPUs are requested;
# on CPU resources.processes processes (torchrun over gloo, `resources.processes`), or a plain
# `lmmcl train-stage`. Launch settings are not params: they change no result's meaning (the
# effective batch is batch_size × grad_accum × processes, so keep it fixed by adjusting grad_accum).
# Rank 0 alone writes the checkpoint, the manifest and the training curves.
if RESOURCES["gpus"] >= 1:
    TRAIN_LAUNCH = "torchrun --standalone --nproc_per_node={resources.gpu} -m lmmcl.cli"
elif CPU_PROCS > 1:
    TRAIN_LAUNCH = ("OMP_NUM_THREADS={resources.proc_threads} "
                    "torchrun --standalone --nproc_per_node={resources.processes} -m lmmcl.cli")
else:
    TRAIN_LAUNCH = "lmmcl"
DEEPSPEED_ARG = _deepspeed_arg()
# storage only (the weights a stage loads are the same either way), so not a param either.
# Both are filled in at run time as `{NAME}` placeholders: Snakemake's "code" rerun trigger
# compares the rule's shell template, so a value pasted into it would rerun every stage.
CKPT_FORMAT = config["checkpoints"]["format"]


rule train_stage:
    """Stage k of a method: start from stage k-1 (or the base), train the recipe on task k."""
    input:
        parent=parent_manifest,
        data=lambda w: train_split(w.task),
    output:
        f"{RES}/{{method}}/stage{{k}}_{{task}}/manifest.json",
    wildcard_constraints:
        method=methods_regex(merged=False),  # WiSE-FT stages: train_stage_finetuned + merge_stage
    params:
        recipe=lambda w: PLAN.recipe(w.method),
        recipes=dumps(config.get("recipes") or {}),
        hparams=lambda w: dumps(PLAN.hparams(w.method, w.task)),
        method_spec=lambda w: dumps(PLAN.method_spec(w.method)),
    threads: RESOURCES["train_threads"] * CPU_PROCS
    resources:
        gpu=RESOURCES["gpus"],
        processes=CPU_PROCS,
        proc_threads=proc_threads,
    log:
        f"{RES}/logs/{{method}}/stage{{k}}_{{task}}.log",
    shell:
        TRAIN_LAUNCH + " train-stage --parent {input.parent} --data {input.data} --method {wildcards.method} "
        "--recipe {params.recipe} --recipes {params.recipes:q} --hparams {params.hparams:q} "
        "--stage {wildcards.k} --task {wildcards.task} --method-spec {params.method_spec:q} "
        "--threads {resources.proc_threads} {DEEPSPEED_ARG} --checkpoint-format {CKPT_FORMAT} "
        "--tracking {TRACKING:q} --out {output} > {log} 2>&1"


# WiSE-FT (methods with `method: wise_ft`): the stage trains into `<stage>/finetuned/`, then
# merge_stage writes θ̄_k = alpha·θ̄_{k-1} + (1-alpha)·θ_k as the stage's own manifest.json, so
# evaluation, the next stage and the tables see the merged model with no special case.
use rule train_stage as train_stage_finetuned with:
    output:
        f"{RES}/{{method}}/stage{{k}}_{{task}}/finetuned/manifest.json",
    wildcard_constraints:
        method=methods_regex(merged=True),
    log:
        f"{RES}/logs/{{method}}/stage{{k}}_{{task}}.finetuned.log",


rule merge_stage:
    """WiSE-FT merge of stage k with the previous merged model (stage 1: the base)."""
    input:
        previous=parent_manifest,
        finetuned=f"{RES}/{{method}}/stage{{k}}_{{task}}/finetuned/manifest.json",
    output:
        f"{RES}/{{method}}/stage{{k}}_{{task}}/manifest.json",
    wildcard_constraints:
        method=methods_regex(merged=True),
    params:
        alpha=lambda w: PLAN.method_spec(w.method)["alpha"],
    threads: RESOURCES["train_threads"]
    log:
        f"{RES}/logs/{{method}}/stage{{k}}_{{task}}.merge.log",
    shell:
        "lmmcl merge-stage --previous {input.previous} --finetuned {input.finetuned} "
        "--alpha {params.alpha} --threads {threads} --checkpoint-format {CKPT_FORMAT} --out {output} > {log} 2>&1"
