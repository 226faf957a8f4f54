# Data: every dataset split as parquet in the data contract (lmmcl.data.contract, docs/data.md), under data.root.
# The embedded default generates its synthetic skills; real datasets get converter rules.


# Data rules are local rules: on a cluster they run where Snakemake runs (the submitting node,
# which has the network), never as a compute job (compute nodes are often offline).
# docs/cluster_data_and_resources.md
rule make_synthetic:
    """One split of a synthetic skill rendered with PIL (deterministic by seed)."""
    localrule: True
    output:
        DATA_LAYOUT.split("{skill}", "{split}"),
    wildcard_constraints:
        skill="|".join(SYNTHETIC),
        split="train|test",
    params:
        n=lambda w: PLAN.synthetic_size(w.skill, w.split),
        seed=SYN["seed"],
        image_size=SYN["image_size"],
    log:
        DATA_LAYOUT.log("{skill}_{split}"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl make-data --skill {wildcards.skill} --split {wildcards.split} --n {params.n} "
        "--seed {params.seed} --image-size {params.image_size} --out {output} > {log} 2>&1"


# Real datasets: one rule convert_<dataset> per dataset of the registry with a converter
# (registry/datasets.yaml), each writing every split listed there plus report.json (counts,
# skipped items with reasons, source revision). Options come from data.sources.<dataset>,
# data.seed and data.limit; they are the job's params, so changing them reruns the conversion.
# Flickr credentials come from the environment only.
# (CONVERTIBLE, source_outputs, source_options: rules/common.smk)
for _dataset in CONVERTIBLE:

    rule:
        name:
            f"convert_{_dataset}"
        localrule: True  # downloads: on the submitting node (a `localrules:` list takes only literal names)
        output:
            **source_outputs(_dataset),
        params:
            dataset=_dataset,
            options=source_options(_dataset),
            out_dir=out_dir_of("report"),
        log:
            DATA_LAYOUT.log(_dataset),
        conda:
            CONDA_ENV
        shell:
            "lmmcl convert {params.dataset} --out-dir {params.out_dir} --options {params.options:q} > {log} 2>&1"

    # `snakemake --list-rules` shows each converter's description (registry/datasets.yaml)
    getattr(rules, f"convert_{_dataset}").rule.docstring = DATASETS[_dataset]["description"]


# The config's own skills (`skills:`, lmmcl.data.declared; docs/own_skill.md): the train split
# (+ report.json) and the test split (+ benchmark.json: the scorer, read by its evaluations) are
# two rules, so that a changed scorer or prompt rewrites the test split only (its evaluations rerun,
# the stages trained on the skill do not). Each checks every row and writes nothing on a problem.
# The params are the checked declaration; the inputs its local rows files (editing one reruns). Their
# priority runs them before any job that is ready at the same time (the base, a stage): a bad row
# or image stops the run before anything trains on it.
# (DECLARED, skill_outputs: rules/common.smk)
for _skill, _decl in DECLARED.items():
    for _split in _decl["outputs"]:

        rule:
            name:
                f"{'convert' if _split == 'train' else 'benchmark'}_skill_{_skill}"
            localrule: True  # a hub dataset downloads: on the submitting node, like convert_<dataset>
            priority: 50
            input:
                _declared.source_files(_decl),
            output:
                **skill_outputs(_skill, _split),
            params:
                name=_skill,
                split=_split,
                spec=dumps(_declared.params(_decl, _split)),
                out_dir=out_dir_of("record"),
            log:
                DATA_LAYOUT.log(f"{_skill}_{_split}"),
            conda:
                CONDA_ENV
            shell:
                "lmmcl skill convert {params.name} --split {params.split} --spec {params.spec:q} "
                "--out-dir {params.out_dir} > {log} 2>&1"


rule data:
    """Target rule: every dataset split the experiment reads (`snakemake --cores 4 data`: convert on
    the login node before submitting anything; docs/cluster.md)."""
    input:
        sorted(
            set(
                base_data(None)
                + [train_split(t) for t in PLAN.sequence]
                + [test_split(b) for b in PLAN.local_benchmarks]
            )
        ),
