# Aggregation: scores.csv (long), R matrices, learning/forgetting tables and plots.


rule aggregate:
    input:
        all_eval_files(),
    output:
        scores=f"{RES}/scores.csv",
        table_md=f"{RES}/tables/learning_forgetting.md",
        table_csv=f"{RES}/tables/learning_forgetting.csv",
        plot_lf=f"{RES}/plots/learning_vs_heldout.png",
        plot_heldout=f"{RES}/plots/heldout_per_stage.png",
        plot_target=f"{RES}/plots/target_per_stage.png",
    params:
        plan=dumps(PLAN.report_plan()),
    log:
        f"{RES}/logs/aggregate.log",
    shell:
        "lmmcl report --results results --plan {params.plan:q} > {log} 2>&1"
