# Data: every dataset split as parquet in the data contract (lmmcl.data.contract, docs/data.md), under data.root.
# The embedded default generates its synthetic skills; real datasets get converter rules.


rule make_synthetic:
    """One split of a synthetic skill rendered with PIL (deterministic by seed)."""
    output:
        DATA_LAYOUT.split("{skill}", "{split}"),
    wildcard_constraints:
        skill=r"syn_[a-z]+",
        split="train|test",
    params:
        n=lambda w: (SYN.get("train_sizes") or {}).get(w.skill, SYN["train_size"]) if w.split == "train"
        else SYN["test_size"],
        seed=SYN["seed"],
        image_size=SYN["image_size"],
    log:
        DATA_LAYOUT.log("{skill}_{split}"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl make-data --skill {wildcards.skill} --split {wildcards.split} --n {params.n} "
        "--seed {params.seed} --image-size {params.image_size} --out {output} > {log} 2>&1"


# Real datasets: one rule per source, each writing every split of registry/datasets.yaml plus
# report.json (counts, skipped items with reasons, source revision). Options come from
# data.sources.<dataset>, data.seed and data.limit; they are the job's params, so changing
# them reruns the conversion. Flickr credentials come from the environment only.
# (source_outputs / source_options: rules/common.smk)

CONVERT = ("lmmcl convert {params.dataset} --out-dir {params.out_dir} --options {params.options:q} "
           "> {log} 2>&1")


rule convert_cub200:
    """CUB-200-2011: official tarball -> seeded 26-way multiple choice (train/test)."""
    output: **source_outputs("cub200")
    params: dataset="cub200", options=source_options("cub200"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("cub200")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_pixmocount:
    """PixMo-Count: hub metadata + Flickr images (FLICKR_API_KEY/FLICKR_API_SECRET), cleaned."""
    output: **source_outputs("pixmocount")
    params: dataset="pixmocount", options=source_options("pixmocount"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("pixmocount")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_pathvqa:
    """PathVQA from the hub (raw question/answer)."""
    output: **source_outputs("pathvqa")
    params: dataset="pathvqa", options=source_options("pathvqa"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("pathvqa")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_textvqa:
    """TextVQA from the hub (10 answers kept, target = majority answer)."""
    output: **source_outputs("textvqa")
    params: dataset="textvqa", options=source_options("textvqa"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("textvqa")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_timeclock:
    """TimeClock train (built here) + test, HH:MM with hour/minute columns."""
    output: **source_outputs("timeclock")
    params: dataset="timeclock", options=source_options("timeclock"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("timeclock")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_cococlock:
    """COCO clock eval set (HH:MM)."""
    output: **source_outputs("cococlock")
    params: dataset="cococlock", options=source_options("cococlock"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("cococlock")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_openimgclock:
    """OpenImages clock eval set (HH:MM)."""
    output: **source_outputs("openimgclock")
    params: dataset="openimgclock", options=source_options("openimgclock"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("openimgclock")
    conda: CONDA_ENV
    shell: CONVERT


rule convert_countbench:
    """CountBench eval set (integer answers)."""
    output: **source_outputs("countbench")
    params: dataset="countbench", options=source_options("countbench"), out_dir=out_dir_of("report")
    log: DATA_LAYOUT.log("countbench")
    conda: CONDA_ENV
    shell: CONVERT
