import copy
from pathlib import Path

import pytest
import yaml

from lmmcl.config import ConfigError, Plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def cfg():
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def test_default_config_plans(cfg):
    plan = Plan(cfg)
    assert plan.sequence == ["syn_birds", "syn_count", "syn_texture", "syn_words", "syn_clock"]
    assert {"sa_proj", "mlp_gate_up", "llm", "full"} <= set(plan.methods)
    assert [s.name for s in plan.stages("full")][0] == "stage1_syn_birds"


def test_hparam_precedence(cfg):
    cfg = copy.deepcopy(cfg)
    cfg["stages"] = {"defaults": {"lr": 1e-3, "steps": 10}, "syn_count": {"lr": 2e-3}}
    cfg["methods"]["sa_proj"] = {"recipe": "sa_proj", "lr": 5e-3, "stages": {"syn_count": {"steps": 7}}}
    plan = Plan(cfg)
    assert plan.hparams("full", "syn_birds")["lr"] == 1e-3            # defaults
    assert plan.hparams("sa_proj", "syn_birds")["lr"] == 5e-3         # method over defaults
    assert plan.hparams("sa_proj", "syn_count")["lr"] == 2e-3         # stage over method
    assert plan.hparams("sa_proj", "syn_count")["steps"] == 7         # method's stage override last
    assert plan.hparams("full", "syn_count")["steps"] == 10


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["methods"].update(x={"recipe": "sa_prj"}), "unknown recipe 'sa_prj'"),
    (lambda c: c["benchmarks"].update(held_out=["syn_colour"]), "unknown benchmark 'syn_colour'"),
    (lambda c: c.update(sequence=["syn_birds", "syn_count", "syn_birds"]), "'syn_birds' appears twice"),
    (lambda c: c.update(sequence=["syn_bird"]), "unknown task 'syn_bird'"),
    (lambda c: c["stages"].update(syn_colour={"lr": 1e-3}), "'syn_colour' is not a task of the sequence"),
    (lambda c: c["methods"]["full"].update(lrr=1e-3), r"unknown key\(s\) \['lrr'\]"),
    (lambda c: c["methods"].clear(), "at least one method"),
    (lambda c: c.update(seed=0), "seed: 0 and seeds: \\[0\\] both given"),
    (lambda c: c.update(seeds=[]), "seeds: \\[\\]"),
    (lambda c: c["model"]["base_training"].update(skills=["syn_colour"]), "base_training.skills: 'syn_colour'"),
    (lambda c: c["model"].update(base_training={"skills": ["syn_color", "syn_broad_add"]}, tiny={"tokenizer": "word"},
                                 checkpoint=None),
     r"\['syn_broad_add'\] need model.tiny.tokenizer: word_broad \(or word_broad_vision or byte\), got 'word'"),
    (lambda c: c["model"].update(base_training={"skills": ["syn_vis_hand"]}, tiny={"tokenizer": "word_broad"},
                                 checkpoint=None),
     r"\['syn_vis_hand'\] need model.tiny.tokenizer: word_vision \(or word_broad_vision or byte\), got 'word_broad'"),
    (lambda c: c.update(sweep={"grid": {"recipe": ["llm"], "lr": [1e-4]}}, methods={"llm_lr1e-4": {"recipe": "llm"}}),
     "method name\\(s\\) \\['llm_lr1e-4'\\] also in `methods`"),
    (lambda c: c.update(sweep={"grid": {"recipe": ["sa_prj"], "lr": [1e-4]}}), "unknown recipe 'sa_prj'"),
])
def test_bad_config_names_the_value(cfg, mutate, message):
    cfg = copy.deepcopy(cfg)
    mutate(cfg)
    with pytest.raises(ConfigError, match=message):
        Plan(cfg)


def test_seeds_and_sweep_expand_into_runs(cfg):
    cfg = copy.deepcopy(cfg)
    cfg["seeds"] = [0, 2, 5]
    cfg["sweep"] = {"grid": {"recipe": ["llm", "sa_proj"], "lr": [1e-4, 1e-3]}, "lr_rule": {"min_learning": 20}}
    plan = Plan(cfg)
    assert plan.seeds == [0, 2, 5]
    swept = ["llm_lr1e-4", "llm_lr1e-3", "sa_proj_lr1e-4", "sa_proj_lr1e-3"]
    assert list(plan.methods)[-4:] == swept and plan.recipe("sa_proj_lr1e-3") == "sa_proj"
    assert plan.hparams("sa_proj_lr1e-3", "syn_count", seed=5)["lr"] == 1e-3
    # a stage trains with its run's seed, unless the config fixes one
    assert plan.hparams("full", "syn_count", seed=5)["seed"] == 5
    cfg["stages"]["syn_count"] = {"seed": 7}
    assert Plan(cfg).hparams("full", "syn_count", seed=5)["seed"] == 7
    rp = plan.report_plan()
    assert rp["seeds"] == [0, 2, 5] and rp["sweep"]["llm_lr1e-3"] == {"recipe": "llm", "lr": 1e-3}
    assert rp["lr_rule"] == {"min_learning": 20}


def _validated(cfg):
    """A config as the rules see it: the schema's defaults filled in."""
    from snakemake.utils import validate

    validate(cfg, schema=str(ROOT / "workflow/schemas/config.schema.yaml"))
    return cfg


@pytest.fixture()
def smoke():
    return yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())


def test_synthetic_sizes_and_base_training(smoke):
    cfg = copy.deepcopy(smoke)
    cfg["data"] = {"synthetic": {"train_size": 50, "train_sizes": {"syn_prior": 70}, "test_size": 9}}
    cfg["model"]["base_training"] = {"hparams": {"lr": 0.1}}
    plan = Plan(_validated(cfg))
    assert plan.synthetic_size("syn_prior", "train") == 70 and plan.synthetic_size("syn_color", "train") == 50
    assert plan.synthetic_size("syn_prior", "test") == 9
    assert plan.base_training == {"skills": ["syn_color"], "hparams": {"lr": 0.1}}  # skills default: held-out


def test_probe_choices_and_their_errors(smoke):
    cfg = copy.deepcopy(smoke)
    cfg.pop("seed", None)
    cfg["seeds"] = [3, 4]
    cfg["sequence"] = ["syn_birds", "syn_count", "syn_clock"]
    cfg["probes"] = {"enabled": True, "methods": ["full"], "stages": ["syn_count", "syn_clock"]}
    plan = Plan(_validated(cfg))
    assert plan.probe_seed == 3                                  # the first run seed
    assert [(s.method, s.name) for s in plan.probe_stages()] == [("full", "stage2_syn_count"),
                                                                  ("full", "stage3_syn_clock")]
    assert plan.probe_dataset("target_data") == "syn_count"     # the counting task of the sequence
    assert plan.probe_dataset("layer_data") == plan.probe_dataset("held_out_data") == "syn_color"
    cfg["probes"].update(seed=7, methods=["nope"])
    plan = Plan(_validated(cfg))
    with pytest.raises(ConfigError, match=r"probes.seed: 7 is not one of the run seeds \[3, 4\]"):
        plan.probe_seed
    with pytest.raises(ConfigError, match="probes.methods: unknown method 'nope'; configured:"):
        plan.probe_stages()
    cfg["benchmarks"]["held_out"] = []
    with pytest.raises(ConfigError, match="probes.held_out_data is needed"):
        Plan(_validated(cfg)).probe_dataset("layer_data")


def test_schema_checks_every_hyperparameter_with_a_default():
    """The schema's bounds ($defs/hparam_keys) and lmmcl.train.hparams' defaults name the same keys."""
    from lmmcl.train.hparams import DEFAULT_HPARAMS

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    assert set(schema["$defs"]["hparam_keys"]["properties"]) == set(DEFAULT_HPARAMS)


def test_command_line_values_get_the_schema_types():
    """`--config 'seeds=[0,1,2]'` reaches the workflow as strings (Snakemake reads nested values with
    YAML's BaseLoader); they are turned into the types the schema asks for before validation."""
    from lmmcl.config import coerce_cli_values

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    cfg = {"seeds": ["0", "1", "2"], "resources": {"base_threads": "1", "deepspeed": "zero2"},
           "stages": {"defaults": {"lr": "1e-3", "steps": "20", "role_lr": {"projector": "2e-5"}}},
           "evaluation": {"fail_on_empty": "true"}, "experiment": "12"}
    coerce_cli_values(cfg, schema)
    assert cfg["seeds"] == [0, 1, 2] and cfg["resources"] == {"base_threads": 1, "deepspeed": "zero2"}
    assert cfg["stages"]["defaults"] == {"lr": 1e-3, "steps": 20, "role_lr": {"projector": 2e-5}}
    assert cfg["evaluation"]["fail_on_empty"] is True and cfg["experiment"] == "12"
    bad = {"seeds": ["zero"]}
    assert coerce_cli_values(bad, schema) == {"seeds": ["zero"]}  # left for the schema's error


def test_research_overlays_plan(cfg):
    """config/tiny_broad.yaml, tiny_broad8.yaml, tiny_vision.yaml, tiny_priors.yaml, tiny_wide.yaml and
    tiny_narrow.yaml merged over the default (as
    benchmarks/default_finding.py --overlay does) give a valid plan with what they change."""
    from snakemake.utils import update_config

    for name, check in (
        ("tiny_broad.yaml", lambda p, c: len(p.base_training["skills"]) == 20
         and c["model"]["tiny"]["tokenizer"] == "word_broad" and p.base_training["hparams"]["lr"] == 1e-3),
        ("tiny_broad8.yaml", lambda p, c: len(p.base_training["skills"]) == 12
         and p.base_training["hparams"]["steps"] == 4200),
        ("tiny_vision.yaml", lambda p, c: sum(s.startswith("syn_vis_") for s in p.base_training["skills"]) == 4
         and c["model"]["tiny"]["tokenizer"] == "word_vision" and p.base_training["hparams"]["steps"] == 3600),
        ("tiny_priors.yaml", lambda p, c: len(p.base_training["skills"]) == 16
         and c["model"]["tiny"]["tokenizer"] == "word_broad_vision" and p.base_training["hparams"]["steps"] == 4800),
        ("tiny_wide.yaml", lambda p, c: c["model"]["tiny"]["hidden_size"] == 256
         and c["model"]["tiny"]["num_layers"] == 4),
        ("tiny_narrow.yaml", lambda p, c: c["model"]["tiny"]["hidden_size"] == 64
         and c["model"]["tiny"]["intermediate_size"] == 256 and c["model"]["tiny"]["tokenizer"] == "word"),
    ):
        merged = copy.deepcopy(cfg)
        update_config(merged, yaml.safe_load((ROOT / "config" / name).read_text()))
        assert check(Plan(merged), merged), name
