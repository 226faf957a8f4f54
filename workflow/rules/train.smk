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
        "--data {input.data} --seed {params.seed} --threads {threads} --out {output} > {log} 2>&1"


rule train_stage:
    """Stage k of a method: start from stage k-1 (or the base), train the recipe on task k."""
    input:
        parent=parent_manifest,
        data=lambda w: train_split(w.task),
    output:
        f"{RES}/{{method}}/stage{{k}}_{{task}}/manifest.json",
    params:
        recipe=lambda w: PLAN.recipe(w.method),
        recipes=dumps(config.get("recipes") or {}),
        hparams=lambda w: dumps(PLAN.hparams(w.method, w.task)),
    threads: RESOURCES["train_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        f"{RES}/logs/{{method}}/stage{{k}}_{{task}}.log",
    shell:
        "lmmcl train-stage --parent {input.parent} --data {input.data} --method {wildcards.method} "
        "--recipe {params.recipe} --recipes {params.recipes:q} --hparams {params.hparams:q} "
        "--stage {wildcards.k} --task {wildcards.task} --threads {threads} --out {output} > {log} 2>&1"
