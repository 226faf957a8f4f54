# Analysis probes (config `probes`, off by default): number-token probe and per-layer contribution
# of the chosen checkpoints vs. the base. Target rule: `snakemake probes`. When disabled, the
# `probes` target is empty and the default target (`tables`) does not depend on any of this.

PROBES = config.get("probes") or {}
PROBE_SEED = PROBES.get("seed", SEEDS[0])  # the run whose checkpoints are probed
if PROBE_SEED not in SEEDS:
    sys.exit(f"Config error: probes.seed: {PROBE_SEED!r} is not one of the run seeds {SEEDS}")


def _probe_dataset(key):
    name = PROBES.get(key)
    if name:
        return name
    if key == "target_data":
        counting = [t for t in PLAN.sequence if "count" in t]
        return counting[0] if counting else PLAN.sequence[0]
    if key == "layer_data":
        return _probe_dataset("held_out_data")
    if not PLAN.held_out:
        sys.exit("Config error: probes.held_out_data is needed (no held-out benchmark to default to)")
    return PLAN.held_out[0]


def probe_checkpoints():
    """{label: manifest} of the checkpoints chosen in config `probes` (methods x stages)."""
    methods = PROBES.get("methods") or list(PLAN.methods)
    stages = PROBES.get("stages") or list(PLAN.sequence)
    for m in methods:
        if m not in PLAN.methods:
            sys.exit(f"Config error: probes.methods: unknown method {m!r}; configured: {sorted(PLAN.methods)}")
    for t in stages:
        if t not in PLAN.sequence:
            sys.exit(f"Config error: probes.stages: {t!r} is not a task of the sequence {PLAN.sequence}")
    return {f"{m}/{s.name}": LAYOUT.stage_manifest(PROBE_SEED, m, s.k, s.task)
            for m in methods for s in PLAN.stages(m) if s.task in stages}


def _labelled(checkpoints):
    return " ".join(f"{label}={path}" for label, path in checkpoints.items())


PROBE_OUT = LAYOUT.probes


rule probe_numbers:
    """Number-token mass / max probability per generated step, counting vs. held-out prompts."""
    input:
        base=LAYOUT.base_manifest(PROBE_SEED),
        checkpoints=lambda w: list(probe_checkpoints().values()),
        target=test_split(_probe_dataset("target_data")),
        heldout=test_split(_probe_dataset("held_out_data")),
    output:
        json=report(f"{PROBE_OUT}/numbers.json", category="4. Probes"),
        png=report(f"{PROBE_OUT}/numbers.png", caption="../report/probe_numbers.rst", category="4. Probes"),
    params:
        checkpoints=lambda w: _labelled(probe_checkpoints()),
        n=PROBES.get("num_samples", 32),
        max_new_tokens=PROBES.get("max_new_tokens", 32),
        device=config["evaluation"]["device"],
    threads: RESOURCES["eval_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.log(PROBE_SEED, "probes", "numbers"),
    shell:
        "OMP_NUM_THREADS={threads} lmmcl probe-numbers --base {input.base} --checkpoints {params.checkpoints} "
        "--target {input.target} --heldout {input.heldout} --n {params.n} "
        "--max-new-tokens {params.max_new_tokens} --device {params.device} "
        "--out-json {output.json} --out-png {output.png} > {log} 2>&1"


rule probe_layers:
    """Per decoder layer: ||W_t h_t - W_b h_b|| of attention / MLP outputs on the answer tokens."""
    input:
        base=LAYOUT.base_manifest(PROBE_SEED),
        checkpoints=lambda w: list(probe_checkpoints().values()),
        data=test_split(_probe_dataset("layer_data")),
    output:
        json=report(f"{PROBE_OUT}/layers.json", category="4. Probes"),
        png=report(f"{PROBE_OUT}/layers.png", caption="../report/probe_layers.rst", category="4. Probes"),
    params:
        checkpoints=lambda w: _labelled(probe_checkpoints()),
        n=PROBES.get("num_samples", 32),
        device=config["evaluation"]["device"],
    threads: RESOURCES["eval_threads"]
    resources:
        gpu=RESOURCES["gpus"],
    log:
        LAYOUT.log(PROBE_SEED, "probes", "layers"),
    shell:
        "OMP_NUM_THREADS={threads} lmmcl probe-layers --base {input.base} --checkpoints {params.checkpoints} "
        "--data {input.data} --n {params.n} --device {params.device} "
        "--out-json {output.json} --out-png {output.png} > {log} 2>&1"


rule probes:
    """Both probes over the checkpoints chosen in config `probes` (empty unless probes.enabled)."""
    input:
        rules.probe_numbers.output if PROBES.get("enabled") else [],
        rules.probe_layers.output if PROBES.get("enabled") else [],
