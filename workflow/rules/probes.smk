# Analysis probes (config `probes`, off by default): number-token probe and per-layer contribution
# of the chosen checkpoints vs. the base. Target rule: `snakemake probes`. When disabled, the
# `probes` target is empty and the default target (`tables`) does not depend on any of this.

# (PROBES, probe_dataset, probe_checkpoints, labelled: rules/common.smk)

rule probe_numbers:
    """Number-token mass / max probability per generated step, counting vs. held-out prompts."""
    input:
        base=LAYOUT.base_manifest(PROBE_SEED),
        checkpoints=lambda w: list(probe_checkpoints().values()),
        target=test_split(probe_dataset("target_data")),
        heldout=test_split(probe_dataset("held_out_data")),
    output:
        json=report(LAYOUT.probe("numbers", "json"), category="4. Probes"),
        png=report(LAYOUT.probe("numbers", "png"), caption="../report/probe_numbers.rst", category="4. Probes"),
    params:
        checkpoints=lambda w: labelled(probe_checkpoints()),
        n=PROBES["num_samples"],
        max_new_tokens=PROBES["max_new_tokens"],
        device=config["evaluation"]["device"],
        **numerics_params("eval"),
    threads: RESOURCES["eval_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.probe_log(PROBE_SEED, "numbers"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl probe-numbers --base {input.base} --checkpoints {params.checkpoints} "
        "--target {input.target} --heldout {input.heldout} --n {params.n} "
        "--max-new-tokens {params.max_new_tokens} --device {params.device} "
        "--numerics {params.numerics} --threads {params.threads} --out-json {output.json} --out-png {output.png} > {log} 2>&1"


rule probe_layers:
    """Per decoder layer: ||W_t h_t - W_b h_b|| of attention / MLP outputs on the answer tokens."""
    input:
        base=LAYOUT.base_manifest(PROBE_SEED),
        checkpoints=lambda w: list(probe_checkpoints().values()),
        data=test_split(probe_dataset("layer_data")),
    output:
        json=report(LAYOUT.probe("layers", "json"), category="4. Probes"),
        png=report(LAYOUT.probe("layers", "png"), caption="../report/probe_layers.rst", category="4. Probes"),
    params:
        checkpoints=lambda w: labelled(probe_checkpoints()),
        n=PROBES["num_samples"],
        device=config["evaluation"]["device"],
        **numerics_params("eval"),
    threads: RESOURCES["eval_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.probe_log(PROBE_SEED, "layers"),
    conda:
        CONDA_ENV
    shell:
        "lmmcl probe-layers --base {input.base} --checkpoints {params.checkpoints} "
        "--data {input.data} --n {params.n} --device {params.device} "
        "--numerics {params.numerics} --threads {params.threads} --out-json {output.json} --out-png {output.png} > {log} 2>&1"


rule probes:
    """Both probes over the checkpoints chosen in config `probes` (empty unless probes.enabled)."""
    input:
        rules.probe_numbers.output if PROBES["enabled"] else [],
        rules.probe_layers.output if PROBES["enabled"] else [],
