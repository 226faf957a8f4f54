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
        LAYOUT.base_manifest("{seed}"),
    params:
        model=dumps(config["model"]),
        hparams=dumps(config["model"].get("base_training", {}).get("hparams", {})),
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.log("{seed}", "base"),
    shell:
        "lmmcl build-base --experiment {EXP} --model {params.model:q} --hparams {params.hparams:q} "
        "--data {input.data} --seed {wildcards.seed} --threads {threads} --out {output} > {log} 2>&1"


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
# a plain `lmmcl train-stage` on CPU. Launch settings are not params: they change no result's meaning
# (the effective batch is batch_size × grad_accum × GPUs, so keep it fixed by adjusting grad_accum).
TRAIN_LAUNCH = (
    "torchrun --standalone --nproc_per_node={resources.gpu} -m lmmcl.cli" if RESOURCES["gpus"] >= 1 else "lmmcl"
)
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
        LAYOUT.stage_manifest("{seed}", "{method}", "{k}", "{task}"),
    wildcard_constraints:
        method=methods_regex(merged=False),  # WiSE-FT stages: train_stage_finetuned + merge_stage
    params:
        recipe=lambda w: PLAN.recipe(w.method),
        recipes=dumps(config.get("recipes") or {}),
        hparams=lambda w: dumps(PLAN.hparams(w.method, w.task, w.seed)),
        method_spec=lambda w: dumps(PLAN.method_spec(w.method)),
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.log("{seed}", "{method}", "stage{k}_{task}"),
    shell:
        TRAIN_LAUNCH + " train-stage --parent {input.parent} --data {input.data} --method {wildcards.method} "
        "--recipe {params.recipe} --recipes {params.recipes:q} --hparams {params.hparams:q} "
        "--stage {wildcards.k} --task {wildcards.task} --method-spec {params.method_spec:q} "
        "--threads {threads} {DEEPSPEED_ARG} --checkpoint-format {CKPT_FORMAT} --out {output} > {log} 2>&1"


# WiSE-FT (methods with `method: wise_ft`): the stage trains into `<stage>/finetuned/`, then
# merge_stage writes θ̄_k = alpha·θ̄_{k-1} + (1-alpha)·θ_k as the stage's own manifest.json, so
# evaluation, the next stage and the tables see the merged model with no special case.
use rule train_stage as train_stage_finetuned with:
    output:
        f"{LAYOUT.stage_dir('{seed}', '{method}', '{k}', '{task}')}/finetuned/manifest.json",
    wildcard_constraints:
        method=methods_regex(merged=True),
    log:
        LAYOUT.log("{seed}", "{method}", "stage{k}_{task}.finetuned"),


rule merge_stage:
    """WiSE-FT merge of stage k with the previous merged model (stage 1: the base)."""
    input:
        previous=parent_manifest,
        finetuned=f"{LAYOUT.stage_dir('{seed}', '{method}', '{k}', '{task}')}/finetuned/manifest.json",
    output:
        LAYOUT.stage_manifest("{seed}", "{method}", "{k}", "{task}"),
    wildcard_constraints:
        method=methods_regex(merged=True),
    params:
        alpha=lambda w: PLAN.method_spec(w.method)["alpha"],
    threads: RESOURCES["train_threads"]
    log:
        LAYOUT.log("{seed}", "{method}", "stage{k}_{task}.merge"),
    shell:
        "lmmcl merge-stage --previous {input.previous} --finetuned {input.finetuned} "
        "--alpha {params.alpha} --threads {threads} --checkpoint-format {CKPT_FORMAT} --out {output} > {log} 2>&1"
