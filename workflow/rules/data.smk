# Data: every dataset split as parquet in the data contract (lmmcl.data.contract, docs/data.md), under data.root.
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


# Real datasets: one rule per source, each writing every split of registry/datasets.yaml plus
# report.json (counts, skipped items with reasons, source revision). Options come from
# data.sources.<dataset>, data.seed and data.limit; they are the job's params, so changing
# them reruns the conversion. Flickr credentials come from the environment only.
from lmmcl.data.sources import dataset_registry

DATASETS = dataset_registry()


def source_outputs(dataset):
    return {"splits": expand(f"{DATA}/{dataset}/{{split}}.parquet", split=DATASETS[dataset]["splits"]),
            "report": f"{DATA}/{dataset}/report.json"}


def source_options(dataset):
    opts = {"seed": config["data"].get("seed", 0), "limit": config["data"].get("limit")}
    opts.update(config["data"].get("sources", {}).get(dataset) or {})
    return dumps(opts)


CONVERT = "lmmcl convert {params.dataset} --out-dir {DATA}/{params.dataset} --options {params.options:q} > {log} 2>&1"


rule convert_cub200:
    """CUB-200-2011: official tarball -> seeded 26-way multiple choice (train/test)."""
    output: **source_outputs("cub200")
    params: dataset="cub200", options=source_options("cub200")
    log: f"{DATA}/logs/cub200.log"
    shell: CONVERT


rule convert_pixmocount:
    """PixMo-Count: hub metadata + Flickr images (FLICKR_API_KEY/FLICKR_API_SECRET), cleaned."""
    output: **source_outputs("pixmocount")
    params: dataset="pixmocount", options=source_options("pixmocount")
    log: f"{DATA}/logs/pixmocount.log"
    shell: CONVERT


rule convert_pathvqa:
    """PathVQA from the hub (raw question/answer)."""
    output: **source_outputs("pathvqa")
    params: dataset="pathvqa", options=source_options("pathvqa")
    log: f"{DATA}/logs/pathvqa.log"
    shell: CONVERT


rule convert_textvqa:
    """TextVQA from the hub (10 answers kept, target = majority answer)."""
    output: **source_outputs("textvqa")
    params: dataset="textvqa", options=source_options("textvqa")
    log: f"{DATA}/logs/textvqa.log"
    shell: CONVERT


rule convert_timeclock:
    """TimeClock train (built here) + test, HH:MM with hour/minute columns."""
    output: **source_outputs("timeclock")
    params: dataset="timeclock", options=source_options("timeclock")
    log: f"{DATA}/logs/timeclock.log"
    shell: CONVERT


rule convert_cococlock:
    """COCO clock eval set (HH:MM)."""
    output: **source_outputs("cococlock")
    params: dataset="cococlock", options=source_options("cococlock")
    log: f"{DATA}/logs/cococlock.log"
    shell: CONVERT


rule convert_openimgclock:
    """OpenImages clock eval set (HH:MM)."""
    output: **source_outputs("openimgclock")
    params: dataset="openimgclock", options=source_options("openimgclock")
    log: f"{DATA}/logs/openimgclock.log"
    shell: CONVERT


rule convert_countbench:
    """CountBench eval set (integer answers)."""
    output: **source_outputs("countbench")
    params: dataset="countbench", options=source_options("countbench")
    log: f"{DATA}/logs/countbench.log"
    shell: CONVERT
