# Aggregation: scores.csv (long), R matrices, learning/forgetting tables and plots.


rule aggregate:
    input:
        all_eval_files(),
    output:
        # report(...) = shown by `snakemake --report report.html` (captions in workflow/report/)
        scores=report(f"{RES}/scores.csv", caption="../report/scores.rst", category="3. Scores"),
        plan=f"{RES}/report_plan.json",
        table_md=f"{RES}/tables/learning_forgetting.md",
        table_csv=report(f"{RES}/tables/learning_forgetting.csv", caption="../report/learning_forgetting.rst",
                         category="1. Tables", subcategory="Learning and forgetting"),
        table_tex=f"{RES}/tables/learning_forgetting.tex",
        r_csv=report([f"{RES}/tables/R_{m}.csv" for m in PLAN.methods], caption="../report/r_matrix.rst",
                     category="1. Tables", subcategory="R matrices"),
        deltas_csv=report([f"{RES}/tables/deltas_{m}.csv" for m in PLAN.methods], caption="../report/deltas.rst",
                          category="1. Tables", subcategory="Per-benchmark deltas"),
        other_tables=[f"{RES}/tables/{t}_{m}.{e}" for m in PLAN.methods for t, e in
                      [("R", "md"), ("R", "tex"), ("deltas", "md"), ("deltas", "tex")]],
        plot_lf=report(f"{RES}/plots/learning_vs_heldout.png", caption="../report/learning_vs_heldout.rst",
                       category="2. Plots"),
        plot_heldout=report(f"{RES}/plots/heldout_per_stage.png", caption="../report/heldout_per_stage.rst",
                            category="2. Plots"),
        plot_target=report(f"{RES}/plots/target_per_stage.png", caption="../report/target_per_stage.rst",
                           category="2. Plots"),
        heatmaps=report([f"{RES}/plots/R_heatmap_{m}.png" for m in PLAN.methods],
                        caption="../report/r_heatmap.rst", category="2. Plots", subcategory="R heatmaps"),
    params:
        plan=dumps(PLAN.report_plan()),
    log:
        f"{RES}/logs/aggregate.log",
    conda:
        CONDA_ENV
    shell:
        "lmmcl report --results results --plan {params.plan:q} > {log} 2>&1"


# Answer gallery: a few fixed test examples per benchmark (image, question, gold answer) with every
# method's answer after every stage, wrong ones marked (lmmcl.report.gallery). Reads the
# evaluations' samples files (written before their JSON) and the test parquet for the images.
rule gallery:
    input:
        evals=all_eval_files(),
        data=[test_split(b) for b in PLAN.local_benchmarks],
    output:
        html=report(f"{RES}/gallery/gallery.html", caption="../report/gallery.rst", category="5. Answer gallery"),
        json=f"{RES}/gallery/gallery.json",
        png=report([f"{RES}/gallery/{b}.png" for b in BENCHMARKS], caption="../report/gallery_png.rst",
                   category="5. Answer gallery", subcategory="Per benchmark"),
    params:
        plan=dumps(PLAN.report_plan()),
        examples=config["gallery"]["examples"],
        data_root=lambda wildcards: DATA,
        out_dir=out_dir_of("html"),
    log:
        f"{RES}/logs/gallery.log",
    conda:
        CONDA_ENV
    shell:
        "lmmcl gallery --results results --plan {params.plan:q} --data-root {params.data_root} "
        "--examples {params.examples} --out-dir {params.out_dir} > {log} 2>&1"
