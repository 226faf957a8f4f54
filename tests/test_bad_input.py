"""Bad input gets an error that names the bad item and what is allowed, before expensive work.

Config: the same two checks as workflow/rules/common.smk (the JSON schema, then `Plan`), in
process; two `snakemake -n` runs show it fails at planning. Files: `lmmcl train-stage`,
`build-base` and `evaluate` through `lmmcl.cli.main`, with model loading replaced by a tripwire
(the error must come before it). docs/reliability.md "Bad input" lists these cases.
"""
import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from lmmcl.cli import main
from lmmcl.config import ConfigError, Plan
from lmmcl.data.synthetic import write_skill

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
RECIPES = ["full", "last_n_layers", "llm", "mlp", "mlp_down", "mlp_gate_up", "projector", "sa_proj"]


def plan(cfg: dict) -> Plan:
    """What common.smk does with a config: schema (shapes, bounds), then Plan (names)."""
    from snakemake.utils import validate

    validate(cfg, schema=str(SCHEMA))
    return Plan(cfg)


@pytest.fixture(scope="module")
def smoke():
    return yaml.safe_load((ROOT / "tests/configs/smoke.yaml").read_text())


@pytest.fixture(scope="module")
def llava_folder(tmp_path_factory):
    """A checkpoint folder of another family than qwen2_5_vl (config.json only)."""
    d = tmp_path_factory.mktemp("llava_ckpt")
    (d / "config.json").write_text(json.dumps({"model_type": "llava"}))
    return d


def _set(path: str, value):
    """Mutation that sets cfg[a][b]... = value (`path` is dotted)."""
    def mutate(cfg):
        *head, last = path.split(".")
        d = cfg
        for k in head:
            d = d.setdefault(k, {})
        d[last] = value
    return mutate


SCHEMA_CASES = [
    # id, mutation, what the message must contain (value, key path, allowed)
    ("negative lr, stages.defaults", _set("stages.defaults.lr", -0.001),
     ["-0.001", "['stages']['defaults']['lr']", "less than or equal to the minimum of 0"]),
    ("negative lr, stage override", _set("stages.syn_count", {"lr": -0.001}),
     ["-0.001", "['stages']['syn_count']['lr']", "minimum of 0"]),
    ("negative lr, method override", _set("methods.full.lr", -0.001),
     ["-0.001", "['methods']['full']['lr']", "minimum of 0"]),
    ("negative lr, method's stage override", _set("methods.full.stages", {"syn_count": {"lr": -0.001}}),
     ["-0.001", "['methods']['full']['stages']['syn_count']['lr']", "minimum of 0"]),
    ("negative lr, base pre-training", _set("model.base_training.hparams.lr", -1),
     ["-1", "['model']['base_training']['hparams']['lr']", "minimum of 0"]),
    ("zero steps, stages.defaults", _set("stages.defaults.steps", 0),
     ["0 is less than the minimum of 1", "['stages']['defaults']['steps']"]),
    ("zero steps, method override", _set("methods.full.steps", 0),
     ["0 is less than the minimum of 1", "['methods']['full']['steps']"]),
    ("negative batch_size, stages.defaults", _set("stages.defaults.batch_size", -4),
     ["-4 is less than the minimum of 1", "['stages']['defaults']['batch_size']"]),
    ("zero batch_size, method override", _set("methods.full.batch_size", 0),
     ["0 is less than the minimum of 1", "['methods']['full']['batch_size']"]),
    ("string lr, method override", _set("methods.full.lr", "fast"),
     ["'fast' is not of type 'number'", "['methods']['full']['lr']"]),
    ("unknown scheduler, method override", _set("methods.full.scheduler", "exp"),
     ["'exp' is not one of", "'cosine'", "['methods']['full']['scheduler']"]),
    ("empty sequence", _set("sequence", []),
     ["[] should be non-empty", "['sequence']"]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES])
def test_config_value_out_of_bounds_fails_schema(smoke, mutate, expected):
    from snakemake.exceptions import WorkflowError

    cfg = copy.deepcopy(smoke)
    mutate(cfg)
    with pytest.raises(WorkflowError) as e:
        plan(cfg)
    for text in expected:
        assert text in str(e.value), str(e.value)


PLAN_CASES = [
    ("unknown model family", _set("model.family", "llava15"),
     ["model.family: unknown model family 'llava15'; allowed: [", "'tiny_llava'", "'qwen2_5_vl'"]),
    ("unknown method", _set("methods.full.method", "ewc"),
     ["methods.full.method: unknown method 'ewc'; allowed: [", "'lora'", "'wise_ft'"]),
    ("unknown recipe", _set("methods.full.recipe", "sa_prj"),
     ["methods.full.recipe: unknown recipe 'sa_prj'; allowed: [", *map(repr, RECIPES)]),
    ("duplicate task", _set("sequence", ["syn_birds", "syn_count", "syn_birds"]),
     ["sequence: task 'syn_birds' appears twice; each task is one stage"]),
    ("unknown task", _set("sequence", ["syn_bird"]),
     ["sequence: unknown task 'syn_bird' (no benchmark measures it); allowed: [", "'syn_birds'"]),
    ("task without train data", _set("sequence", ["countbench"]),
     ["sequence: task 'countbench' is not a dataset with a train split", "allowed: [", "'syn_birds'", "'cub200'"]),
    ("unknown benchmark", _set("benchmarks.held_out", ["syn_colour"]),
     ["benchmarks.held_out: unknown benchmark 'syn_colour'; allowed: [", "'syn_color'"]),
    ("unknown named sequence", _set("sequence", "main"),
     ["sequence: 'main' is not one of the named sequences []"]),
    ("real family without checkpoint", _set("model", {"family": "qwen2_5_vl"}),
     ["model.checkpoint: required for family 'qwen2_5_vl'", "'Qwen/Qwen2.5-VL-7B-Instruct'"]),
    ("checkpoint hub id of another family", _set("model", {"family": "qwen2_5_vl",
                                                          "checkpoint": "llava-hf/llava-onevision-qwen2-7b-ov-hf"}),
     ["model.checkpoint: checkpoint llava-hf/llava-onevision-qwen2-7b-ov-hf is a 'llava_onevision' model",
      "but model.family is 'qwen2_5_vl'", "allowed: a qwen2_5_vl checkpoint (config.json model_type 'qwen2_5_vl')"]),
    ("checkpoint folder that does not exist", _set("model", {"family": "llava_next", "checkpoint": "/nonexistent/ckpt"}),
     ["model.checkpoint: '/nonexistent/ckpt' is not a checkpoint folder", "allowed: a local folder with config.json"]),
]


@pytest.mark.parametrize("mutate, expected", [c[1:] for c in PLAN_CASES], ids=[c[0] for c in PLAN_CASES])
def test_config_name_fails_plan(smoke, mutate, expected):
    cfg = copy.deepcopy(smoke)
    mutate(cfg)
    with pytest.raises(ConfigError) as e:
        plan(cfg)
    for text in expected:
        assert text in str(e.value), str(e.value)


def test_checkpoint_folder_of_another_family_fails_plan(smoke, llava_folder):
    cfg = copy.deepcopy(smoke)
    cfg["model"] = {"family": "qwen2_5_vl", "checkpoint": str(llava_folder)}
    with pytest.raises(ConfigError, match=r"model\.checkpoint: checkpoint .*llava_ckpt.* is a 'llava' model "
                                          r"\(family tiny_llava\), but model\.family is 'qwen2_5_vl'; allowed: "
                                          r"a qwen2_5_vl checkpoint \(config\.json model_type 'qwen2_5_vl'\)"):
        plan(cfg)


def test_empty_sequence_given_to_plan_lists_the_tasks(smoke):
    cfg = copy.deepcopy(smoke)
    cfg["sequence"] = []  # the schema stops this first; Plan on its own says which tasks exist
    with pytest.raises(ConfigError, match=r"sequence: empty; list at least one task .*allowed: \[.*'syn_birds'"):
        Plan(cfg)


# ---- snakemake -n: the config errors stop planning -----------------------------------------------

def _snakemake_n(workdir: Path, cfg: dict, *extra):
    bin_dir = Path(sys.executable).parent
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(bin_dir / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"),
                           "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"), "-n", *extra],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["negative method lr", "checkpoint of another family"])
def test_snakemake_dry_run_stops_at_planning(tmp_path, smoke, case):
    cfg = copy.deepcopy(smoke)
    if case == "negative method lr":
        cfg["methods"]["full"]["lr"] = -0.001
        p = _snakemake_n(tmp_path, cfg)
        expected = ["-0.001 is less than or equal to the minimum of 0", "['methods']['full']['lr']"]
    else:
        p = _snakemake_n(tmp_path, cfg, "--config",
                         "model={family: qwen2_5_vl, checkpoint: llava-hf/llava-onevision-qwen2-7b-ov-hf}")
        expected = ["Config error: model.checkpoint: checkpoint llava-hf/llava-onevision-qwen2-7b-ov-hf is a "
                    "'llava_onevision' model", "allowed: a qwen2_5_vl checkpoint"]
    out = p.stdout + p.stderr
    assert p.returncode != 0
    for text in expected:
        assert text in out, out[-3000:]
    assert "Job stats" not in out and not (tmp_path / "results").exists()


# ---- files given to the CLI: before the model loads ------------------------------------------------

class ModelLoaded(Exception):
    pass


@pytest.fixture()
def tripwire(monkeypatch):
    """Loading or building a model raises ModelLoaded: an error must come before it."""
    import lmmcl.models.tiny
    import lmmcl.train.stage

    def boom(*a, **k):
        raise ModelLoaded()

    monkeypatch.setattr(lmmcl.train.stage, "load_model", boom)
    monkeypatch.setattr(lmmcl.models.tiny, "build_tiny_llava", boom)
    monkeypatch.setitem(sys.modules, "lmms_eval", None)  # `import lmms_eval` (evaluation) fails


def _manifest(folder: Path, model_type: str = "llava", family: str = "tiny_llava", **extra) -> Path:
    (folder / "model").mkdir(parents=True, exist_ok=True)
    (folder / "model/config.json").write_text(json.dumps({"model_type": model_type}))
    m = {"kind": "base", "stage": 0, "family": family, "checkpoint": "model", "checkpoint_is_local": True, **extra}
    (folder / "manifest.json").write_text(json.dumps(m))
    return folder / "manifest.json"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A base manifest (config.json only: nothing is loaded), a good split and broken copies."""
    d = tmp_path_factory.mktemp("bad_files")
    base = _manifest(d / "base")
    good = write_skill("syn_birds", "train", 8, 0, d / "good.parquet")
    t = pq.read_table(good)

    def with_cell(name, col, row, value):
        cells = t.column(col).to_pylist()
        cells[row] = value
        col_i = t.schema.get_field_index(col)
        pq.write_table(t.set_column(col_i, t.schema.field(col), pa.array(cells, type=t.schema.field(col).type)),
                       d / name)
        return d / name

    bad = {
        "missing": d / "nope.parquet",
        "no_answer_column": d / "no_answer.parquet",
        "not_an_image": with_cell("not_image.parquet", "image", 3, {"bytes": b"not an image", "path": None}),
        "null_image": with_cell("null_image.parquet", "image", 1, None),
        "empty_answer": with_cell("empty_answer.parquet", "answer", 2, ""),
        "null_question": with_cell("null_question.parquet", "question", 5, None),
        "truncated": d / "truncated.parquet",
        "not_parquet": d / "text.parquet",
        "no_rows": d / "no_rows.parquet",
    }
    pq.write_table(t.drop(["answer"]), bad["no_answer_column"])
    raw = good.read_bytes()
    bad["truncated"].write_bytes(raw[: len(raw) // 2])
    bad["not_parquet"].write_text("id,question,answer\n1,a,b\n")
    pq.write_table(t.slice(0, 0), bad["no_rows"])
    return {"dir": d, "base": base, "good": good, **bad}


def _train_stage(capsys, parent, data, recipe="full") -> str:
    with pytest.raises(SystemExit) as e:
        main(["train-stage", "--parent", str(parent), "--data", str(data), "--method", "m", "--recipe", recipe,
              "--hparams", '{"lr": 0.001, "steps": 1}', "--out", str(Path(parent).parent / "out/manifest.json")])
    assert e.value.code == 2
    return capsys.readouterr().err


DATA_CASES = [
    ("missing data file", "missing", ["nope.parquet: data file not found"]),
    ("parquet without a required column", "no_answer_column",
     ["no_answer.parquet: missing required column(s) ['answer']", "required: ['id', 'image', 'question', 'answer', 'task']"]),
    ("row whose image bytes are not an image", "not_an_image",
     ["not_image.parquet: row 3 (id 'syn_birds_train_00003'): column 'image' is not a readable image",
      "allowed: embedded image bytes (PNG/JPEG"]),
    ("row with a null image", "null_image",
     ["null_image.parquet: row 1 (id 'syn_birds_train_00001'): column 'image' holds no image bytes",
      "allowed: embedded image bytes"]),
    ("row with an empty answer", "empty_answer",
     ["empty_answer.parquet: row 2 (id 'syn_birds_train_00002'): column 'answer' is ''; allowed: a non-empty string"]),
    ("row with a null question", "null_question",
     ["null_question.parquet: row 5 (id 'syn_birds_train_00005'): column 'question' is None; "
      "allowed: a non-empty string"]),
    ("truncated parquet", "truncated", ["truncated.parquet: not a readable parquet file", "expected a split written by"]),
    ("text file named .parquet", "not_parquet", ["text.parquet: not a readable parquet file"]),
    ("parquet with no rows", "no_rows", ["no_rows.parquet: no rows; a split needs at least one example"]),
]


@pytest.mark.parametrize("key, expected", [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_train_stage_bad_data_fails_before_model_load(files, tripwire, capsys, key, expected):
    err = _train_stage(capsys, files["base"], files[key])
    assert err.startswith("lmmcl train-stage: error: ")
    for text in expected:
        assert text in err, err


def test_good_input_reaches_the_model_load(files, tripwire, capsys):
    """Control: the checks pass good input on to the (tripwired) model load."""
    with pytest.raises(ModelLoaded):
        main(["train-stage", "--parent", str(files["base"]), "--data", str(files["good"]), "--method", "m",
              "--recipe", "full", "--hparams", '{"lr": 0.001, "steps": 1}',
              "--out", str(files["dir"] / "ok/manifest.json")])


def test_build_base_bad_row_fails_before_building(files, tripwire, capsys):
    with pytest.raises(SystemExit) as e:
        main(["build-base", "--experiment", "t", "--model", '{"family": "tiny_llava"}',
              "--data", str(files["empty_answer"]), "--out", str(files["dir"] / "b/manifest.json")])
    assert e.value.code == 2
    assert "empty_answer.parquet: row 2 (id 'syn_birds_train_00002'): column 'answer' is ''" in capsys.readouterr().err


PARENT_CASES = [
    ("manifest path that does not exist", lambda d: d / "nope/manifest.json",
     ["parent manifest not found:", "nope/manifest.json", "allowed: the manifest.json of a finished base or stage"]),
    ("stage manifest without its checkpoint folder", lambda d: _strip_model(_manifest(d / "s", kind="stage")),
     ["s/manifest.json: checkpoint folder", "is missing or has no config.json"]),
    ("manifest whose checkpoint is null", lambda d: _null_checkpoint(_manifest(d / "n")),
     ["n/manifest.json: no checkpoint (manifest key 'checkpoint' is None)", "allowed: a checkpoint folder or hub id"]),
    ("manifest not JSON", lambda d: _garble(_manifest(d / "g")), ["g/manifest.json: not a readable manifest"]),
    ("stage manifest whose family differs from its checkpoint",
     lambda d: _manifest(d / "f", model_type="llava", family="qwen2_5_vl", kind="stage"),
     ["parent", "f/manifest.json: checkpoint", "is a 'llava' model (family tiny_llava), but its manifest's family "
      "is 'qwen2_5_vl'; allowed: a qwen2_5_vl checkpoint (config.json model_type 'qwen2_5_vl')"]),
    ("checkpoint folder of another family than the manifest's",
     lambda d: _manifest(d / "q", model_type="qwen2_5_vl", family="tiny_llava"),
     ["q/manifest.json: checkpoint", "is a 'qwen2_5_vl' model (family qwen2_5_vl), but its manifest's family is "
      "'tiny_llava'; allowed: a tiny_llava checkpoint (config.json model_type 'llava')"]),
]


def _strip_model(manifest: Path) -> Path:
    (manifest.parent / "model/config.json").unlink()
    (manifest.parent / "model").rmdir()
    return manifest


def _null_checkpoint(manifest: Path) -> Path:
    m = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**m, "checkpoint": None}))
    return manifest


def _garble(manifest: Path) -> Path:
    manifest.write_text(manifest.read_text()[:20])
    return manifest


@pytest.mark.parametrize("make, expected", [c[1:] for c in PARENT_CASES], ids=[c[0] for c in PARENT_CASES])
def test_train_stage_bad_parent_fails_before_model_load(files, tmp_path, tripwire, capsys, make, expected):
    err = _train_stage(capsys, make(tmp_path), files["good"])
    for text in expected:
        assert text in err, err


def test_train_stage_unknown_recipe_fails_before_model_load(files, tripwire, capsys):
    err = _train_stage(capsys, files["base"], files["good"], recipe="fulll")
    assert "unknown recipe 'fulll'; allowed: [" in err and "'sa_proj'" in err


# ---- lmmcl evaluate: before lmms-eval and the model ------------------------------------------------

@pytest.fixture(scope="module")
def eval_root(files):
    root = files["dir"] / "eval_data"
    write_skill("syn_birds", "test", 4, 0, root / "syn_birds/test.parquet")
    bad = root / "bad/syn_birds/test.parquet"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(files["not_an_image"].read_bytes())
    return root


EVAL_CASES = [
    ("manifest path that does not exist", ["nope/manifest.json"], "",
     ["manifest not found: nope/manifest.json; allowed: an existing manifest.json"]),
    ("unknown benchmark", ["BASE", "--benchmarks", "syn_colour"], "",
     ["unknown benchmark(s) ['syn_colour']; allowed: [", "'syn_color'"]),
    ("missing test parquet", ["BASE", "--benchmarks", "syn_count"], "",
     ["benchmark 'syn_count': test data not found:", "syn_count/test.parquet"]),
    ("corrupt test row", ["BASE", "--benchmarks", "syn_birds"], "bad",
     ["benchmark 'syn_birds':", "bad/syn_birds/test.parquet: row 3", "column 'image' is not a readable image",
      "allowed: embedded image bytes"]),
]


@pytest.mark.parametrize("args, sub, expected", [c[1:] for c in EVAL_CASES], ids=[c[0] for c in EVAL_CASES])
def test_evaluate_bad_input_fails_before_lmms_eval(files, eval_root, tripwire, capsys, monkeypatch, args, sub,
                                                   expected):
    monkeypatch.chdir(files["dir"])
    args = [str(files["base"]) if a == "BASE" else a for a in args]
    if "--benchmarks" not in args:
        args += ["--benchmarks", "syn_birds"]
    with pytest.raises(SystemExit) as e:
        main(["evaluate", *args, "--data-root", str(eval_root / sub), "--out-dir", str(files["dir"] / "ev")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("lmmcl evaluate: error: ")
    for text in expected:
        assert text in err, err


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "config").glob("*.yaml")))
def test_every_shipped_config_is_valid(config):
    cfg = yaml.safe_load((ROOT / "config" / config).read_text())
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    if not set(schema["required"]) <= set(cfg):  # an overlay (sweep_tiny, tiny_broad, tiny_wide): merged over
        from snakemake.utils import update_config  # the default, as Snakemake does with --configfile config/config.yaml <overlay>

        overlay, cfg = cfg, yaml.safe_load((ROOT / "config/config.yaml").read_text())
        update_config(cfg, overlay)
    p = plan(cfg)
    assert p.sequence and p.methods
    if config.startswith("paper_llava_onevision"):  # the study's nine component recipes
        assert {"vision_tower", "projector", "llm", "sa_proj", "sa_qkv", "mlp", "mlp_gate_up", "sa_proj_mlp",
                "full"} <= set(p.methods)
