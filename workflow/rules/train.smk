# Training: the base (stage 0) and one job per (method, stage). A stage's hyperparameters are
# its `params`, so changing one stage's config reruns that stage and what depends on it only.


# (base_data, train_launch, DEEPSPEED_ARG, TRACKING, CKPT_FORMAT: rules/common.smk)


rule build_base:
    """Stage 0: the tiny base pre-trained on the held-out skills, or a pointer to a real checkpoint."""
    input:
        data=base_data,
        checkpoint=base_checkpoint_files,
    output:
        LAYOUT.base_manifest("{seed}"),
    params:
        experiment=EXP,
        model=dumps(config["model"]),
        hparams=dumps(PLAN.base_training["hparams"]),
        **numerics_params("base"),
    threads: RESOURCES["base_threads"]
    resources:
        gpu=RESOURCES["gpus"],
        tracking=TRACKING,
    log:
        LAYOUT.log("{seed}", "base"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl build-base --experiment {params.experiment} --model {params.model:q} --hparams {params.hparams:q} "
        "--data {input.data} --seed {wildcards.seed} --numerics {params.numerics} --threads {params.threads} "
        "--tracking {resources.tracking:q} "
        "--out {output} > {log} 2>&1"


# One process per GPU (torchrun) when GPUs are requested; on CPU resources.processes processes
# (torchrun over gloo), or a plain `lmmcl train-stage`: `resources.launch` (rules/common.smk).
# Launch settings are not params: they change no result's meaning (the effective batch is
# batch_size × grad_accum × processes, so keep it fixed by adjusting grad_accum). Rank 0 alone
# writes the checkpoint, the manifest and the training curves. The checkpoint format is storage
# only and the tracking where curves go: not params either.


rule train_stage:
    """Stage k of a method: start from stage k-1 (or the base), train the recipe on task k
    (and with evaluation.in_training_job, evaluate it in the same process)."""
    input:
        parent=parent_manifest,
        data=lambda w: train_split(w.task),
        test_data=[test_split(b) for b in PLAN.local_benchmarks] if IN_JOB_EVAL else [],
    output:
        manifest=LAYOUT.stage_manifest("{seed}", "{method}", "{k}", "{task}"),
        **in_job_eval_outputs(),
    wildcard_constraints:
        method=methods_regex(merged=False),  # WiSE-FT stages: train_stage_finetuned + merge_stage
    params:
        recipe=lambda w: PLAN.recipe(w.method),
        recipes=dumps(PLAN.extra_recipes),
        hparams=lambda w: dumps(PLAN.hparams(w.method, w.task, w.seed)),
        method_spec=lambda w: dumps(PLAN.method_spec(w.method)),
        **numerics_params("train"),
        **in_job_eval_params(),
    threads: max(RESOURCES["train_threads"], RESOURCES["eval_threads"] if IN_JOB_EVAL else 1) * CPU_PROCS
    resources:
        **PROCESS_RESOURCES,
        launch=train_launch,
        deepspeed=DEEPSPEED_ARG,
        ckpt_format=CKPT_FORMAT,
        tracking=TRACKING,
    log:
        LAYOUT.stage_log("{seed}", "{method}", "{k}", "{task}"),
    conda:
        CONDA_ENV
    shell:
        "{resources.launch} train-stage --parent {input.parent} --data {input.data} --method {wildcards.method} "
        "--recipe {params.recipe} --recipes {params.recipes:q} --hparams {params.hparams:q} "
        "--stage {wildcards.k} --task {wildcards.task} --method-spec {params.method_spec:q} "
        "--numerics {params.numerics} --threads {params.threads} {resources.deepspeed} --checkpoint-format {resources.ckpt_format} "
        "--tracking {resources.tracking:q} --out {output.manifest}"
        + (" {params.evaluate}" if IN_JOB_EVAL else "") + " > {log} 2>&1"


# WiSE-FT (methods with `method: wise_ft`): the stage trains into `<stage>/finetuned/`, then
# merge_stage writes θ̄_k = alpha·θ̄_{k-1} + (1-alpha)·θ_k as the stage's own manifest.json, so
# evaluation, the next stage and the tables see the merged model with no special case.
use rule train_stage as train_stage_finetuned with:
    input:  # the finetuned model is not what is evaluated (the merge is): no test splits
        parent=parent_manifest,
        data=lambda w: train_split(w.task),
    output:
        manifest=LAYOUT.finetuned_manifest("{seed}", "{method}", "{k}", "{task}"),
    wildcard_constraints:
        method=methods_regex(merged=True),
    log:
        LAYOUT.stage_log("{seed}", "{method}", "{k}", "{task}", "finetuned"),


rule merge_stage:
    """WiSE-FT merge of stage k with the previous merged model (stage 1: the base)."""
    input:
        previous=parent_manifest,
        finetuned=LAYOUT.finetuned_manifest("{seed}", "{method}", "{k}", "{task}"),
    output:
        LAYOUT.stage_manifest("{seed}", "{method}", "{k}", "{task}"),
    wildcard_constraints:
        method=methods_regex(merged=True),
    params:
        alpha=lambda w: PLAN.method_spec(w.method)["alpha"],
        **numerics_params("train"),
    threads: RESOURCES["train_threads"]
    resources:
        ckpt_format=CKPT_FORMAT,
    log:
        LAYOUT.stage_log("{seed}", "{method}", "{k}", "{task}", "merge"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl merge-stage --previous {input.previous} --finetuned {input.finetuned} "
        "--alpha {params.alpha} --numerics {params.numerics} --threads {params.threads} --checkpoint-format {resources.ckpt_format} --out {output} > {log} 2>&1"
