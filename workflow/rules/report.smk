# Aggregation: scores.csv (long), R matrices, learning/forgetting tables and plots; the answer
# gallery. Every path comes from lmmcl.layout (LAYOUT), which `lmmcl report` / `lmmcl gallery` use too.

REPORT_FILES = LAYOUT.report_files(PLAN.methods)
LF_CSV = LAYOUT.table("learning_forgetting", "csv")
R_CSV = [LAYOUT.r_table(m, "csv") for m in PLAN.methods]
DELTAS_CSV = [LAYOUT.deltas_table(m, "csv") for m in PLAN.methods]


# aggregate and gallery are local rules: seconds of CPU over results/ at the end of a run, which
# as cluster jobs would wait in the queue for longer than they run (docs/cluster_data_and_resources.md).
rule aggregate:
    localrule: True
    input:
        all_eval_files(),
    output:
        scores=report(LAYOUT.scores, caption="../report/scores.rst", category="3. Scores"),
        plan=LAYOUT.plan_file,
        # report(...) = shown by `snakemake --report report.html` (captions in workflow/report/)
        table_csv=report(LF_CSV, caption="../report/learning_forgetting.rst", category="1. Tables",
                         subcategory="Learning and forgetting"),
        r_csv=report(R_CSV, caption="../report/r_matrix.rst", category="1. Tables", subcategory="R matrices"),
        deltas_csv=report(DELTAS_CSV, caption="../report/deltas.rst", category="1. Tables",
                          subcategory="Per-benchmark deltas"),
        other_tables=[t for t in REPORT_FILES["tables"] if t not in [LF_CSV, *R_CSV, *DELTAS_CSV]],
        **{f"plot_{name}": report(LAYOUT.plot(name), caption=f"../report/{name}.rst", category="2. Plots")
           for name in PLOTS},
        heatmaps=report([LAYOUT.heatmap(m) for m in PLAN.methods], caption="../report/r_heatmap.rst",
                        category="2. Plots", subcategory="R heatmaps"),
    params:
        results=lambda wildcards: LAYOUT.root,
        plan=dumps(PLAN.report_plan()),
    log:
        LAYOUT.exp_log("aggregate"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl report --results {params.results} --plan {params.plan:q} > {log} 2>&1"


# Answer gallery: a few fixed test examples per benchmark (image, question, gold answer) with every
# method's answer after every stage, wrong ones marked (lmmcl.report.gallery). Reads the
# evaluations' samples files (written before their JSON) and the test parquet for the images.
GALLERY = LAYOUT.gallery_files(BENCHMARKS)


rule gallery:
    localrule: True
    input:
        evals=all_eval_files(),
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        html=report(GALLERY["html"], caption="../report/gallery.rst", category="5. Answer gallery"),
        json=GALLERY["json"],
        png=report(GALLERY["png"], caption="../report/gallery_png.rst", category="5. Answer gallery",
                   subcategory="Per benchmark"),
    params:
        results=lambda wildcards: LAYOUT.root,
        plan=dumps(PLAN.report_plan()),
        examples=config["gallery"]["examples"],
        data_root=lambda wildcards: DATA,
        out_dir=out_dir_of("html"),
    log:
        LAYOUT.exp_log("gallery"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl gallery --results {params.results} --plan {params.plan:q} --data-root {params.data_root} "
        "--examples {params.examples} --out-dir {params.out_dir} > {log} 2>&1"
