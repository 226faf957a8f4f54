# Data: every dataset split as parquet in the data contract (DESIGN.md), under data.root.
# The embedded default generates its synthetic skills; real datasets get converter rules.


rule make_synthetic:
    """One split of a synthetic skill rendered with PIL (deterministic by seed)."""
    output:
        f"{DATA}/{{skill}}/{{split}}.parquet",
    wildcard_constraints:
        skill=r"syn_[a-z]+",
        split="train|test",
    params:
        n=lambda w: SYN["train_size"] if w.split == "train" else SYN["test_size"],
        seed=SYN["seed"],
        image_size=SYN["image_size"],
    log:
        f"{DATA}/logs/{{skill}}_{{split}}.log",
    shell:
        "lmmcl make-data --skill {wildcards.skill} --split {wildcards.split} --n {params.n} "
        "--seed {params.seed} --image-size {params.image_size} --out {output} > {log} 2>&1"
