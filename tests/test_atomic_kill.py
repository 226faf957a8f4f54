"""Kill -9 during data generation, evaluation and a Snakemake job: no partial file ever has a
final name, and a rerun (Snakemake: `--unlock`, then `--rerun-incomplete`) completes.

Two ways to kill at a chosen moment:
* polling: the real CLI runs until its temporary file exists (mid-write), then SIGKILL;
* pausing: a `sitecustomize` on PYTHONPATH (only in these subprocesses) makes the N-th
  `os.replace` to a final (not hidden) name in a given folder write a flag file and sleep, so the process is killed with
  its output fully written under the temporary name but not yet renamed -- the last moment a
  kill can hit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lmmcl.data import contract

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

SITECUSTOMIZE = textwrap.dedent('''
    import os
    _dir = os.environ.get("ATOMIC_TEST_PAUSE_DIR")
    if _dir:
        import time
        _real, _seen = os.replace, [0]

        def _replace(src, dst, *args, **kwargs):
            d = os.path.abspath(os.fspath(dst))
            final = not os.path.basename(d).startswith(".")  # not a rename between temporary files
            if final and d.startswith(_dir) and d.endswith(os.environ.get("ATOMIC_TEST_PAUSE_SUFFIX", "")):
                _seen[0] += 1
                if _seen[0] == int(os.environ.get("ATOMIC_TEST_PAUSE_NTH", "1")):
                    with open(os.environ["ATOMIC_TEST_FLAG"], "w") as f:
                        f.write(os.fspath(src) + "\\n" + d + "\\n")
                    time.sleep(600)
            return _real(src, dst, *args, **kwargs)

        os.replace = _replace
''')

TINY_CONFIG = (Path(__file__).parent / "configs/micro.yaml").read_text().replace("experiment: micro", "experiment: kill")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment: offline, one thread, the pausing sitecustomize importable, and a
    failing `scontrol` first on PATH (the SLURM executor plugin runs `scontrol show config` when
    Snakemake starts; on a machine with SLURM tools but no controller that waits 9 s per call)."""
    root = tmp_path_factory.mktemp("kill_env")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (root / "bin").mkdir()
    shim = root / "bin" / "scontrol"
    shim.write_text("#!/bin/sh\nexit 1\n")
    shim.chmod(0o755)
    e = dict(os.environ)
    e.update(PATH=f"{root / 'bin'}:{BIN}:{e['PATH']}", PYTHONPATH=str(root / "site"), HF_HOME=str(root / "hf_home"),
             HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return e


def _start(cmd, env, cwd, log: Path) -> subprocess.Popen:
    # own session = own process group: killpg takes Snakemake and every job it started
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for(cond, proc: subprocess.Popen, log: Path, timeout: float, what: str, step: float = 0.005):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            raise AssertionError(f"process ended ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(step)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"no {what} after {timeout} s:\n{log.read_text()[-3000:]}")


def _kill(proc: subprocess.Popen):
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def _pause(env, folder: Path, flag: Path, suffix: str, nth: int) -> dict:
    return {**env, "ATOMIC_TEST_PAUSE_DIR": str(folder.resolve()), "ATOMIC_TEST_PAUSE_SUFFIX": suffix,
            "ATOMIC_TEST_PAUSE_NTH": str(nth), "ATOMIC_TEST_FLAG": str(flag)}


# --------------------------------------------------------------------------- data
def test_kill_during_data_generation(env, tmp_path):
    """`lmmcl make-data` killed while pyarrow writes the parquet: no train.parquet; rerun valid."""
    out = tmp_path / "data" / "syn_count" / "train.parquet"
    cmd = [str(BIN / "lmmcl"), "make-data", "--skill", "syn_count", "--split", "train", "--n", "20000",
           "--seed", "3", "--out", str(out)]
    log = tmp_path / "make_data.log"
    proc = _start(cmd, env, tmp_path, log)

    def temp_being_written():
        return [p for p in out.parent.glob(".train.parquet.*.tmp.parquet") if p.stat().st_size > 0] \
            if out.parent.is_dir() else []
    partial = _wait_for(temp_being_written, proc, log, 120, "temporary parquet with data")
    _kill(proc)
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == [partial[0].name]  # the only trace: a hidden temp

    subprocess.run(cmd, env=env, cwd=tmp_path, check=True, capture_output=True)
    contract.validate_split(out, rows=True)
    assert len(contract.read_split(out)) == 20000
    print(f"killed with {partial[0].stat().st_size} of {out.stat().st_size} bytes written")


def test_kill_during_conversion(env, tmp_path):
    """`lmmcl convert` killed between renaming its splits: report.json (written last) is missing,
    so the set is visibly incomplete (and Snakemake reruns the job); the rerun writes all."""
    from fixtures.source_formats import jpeg, write_hub_split

    src = tmp_path / "src"
    rows = [{"image": jpeg(i), "question": "q?", "answer": "yes"} for i in range(6)]
    splits = ("train", "validation", "test")
    for split in splits:
        write_hub_split(src, split, rows, "pathvqa")
    out = tmp_path / "pathvqa"
    cmd = [str(BIN / "lmmcl"), "convert", "pathvqa", "--out-dir", str(out), "--options",
           json.dumps({"path": str(src), "cache_dir": str(tmp_path / "cache")})]
    flag, log = tmp_path / "paused", tmp_path / "convert.log"
    proc = _start(cmd, _pause(env, out, flag, ".parquet", 2), tmp_path, log)
    _wait_for(flag.exists, proc, log, 120, "the pause before the second split's rename", step=0.05)
    time.sleep(0.1)
    _kill(proc)
    finals = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert len(finals) == 1 and finals[0] in {f"{s}.parquet" for s in splits}  # report.json missing
    contract.validate_split(out / finals[0], rows=True)  # what has a final name is complete

    subprocess.run(cmd, env=env, cwd=tmp_path, check=True, capture_output=True)
    for split in splits:
        assert len(contract.read_split(out / f"{split}.parquet")) == 6
    assert json.loads((out / "report.json").read_text())["counts"]["train"]["kept"] == 6


# --------------------------------------------------------------------------- evaluation
@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory):
    from lmmcl.data.synthetic import write_skill
    from lmmcl.models.tiny import TinySpec, save_tiny_llava

    root = tmp_path_factory.mktemp("kill_eval")
    ckpt = save_tiny_llava(root / "ckpt", TinySpec(), seed=0)
    for skill in ("syn_color", "syn_count"):
        write_skill(skill, "test", 8, 0, root / "data" / skill / "test.parquet")
    return root, ckpt


def _eval_cmd(ckpt, data_root, out):
    return [str(BIN / "lmmcl"), "evaluate", str(ckpt), "--benchmarks", "syn_color", "syn_count",
            "--data-root", str(data_root), "--out-dir", str(out), "--limit", "4", "--threads", "1"]


def test_kill_during_evaluation(env, tiny_eval, tmp_path):
    root, ckpt = tiny_eval
    out = tmp_path / "evals"
    cmd = _eval_cmd(ckpt, root / "data", out)

    # 1. killed while lmms-eval runs (its task folder exists): nothing in the output folder
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    log = tmp_path / "eval1.log"
    proc = _start(cmd, {**env, "TMPDIR": str(tmpdir)}, tmp_path, log)
    _wait_for(lambda: list(tmpdir.glob("lmmcl_eval_*/tasks/*.yaml")), proc, log, 120, "lmms-eval task files")
    time.sleep(0.3)
    _kill(proc)
    assert not out.exists() or not any(p.name.endswith((".json", ".jsonl")) for p in out.iterdir())

    # 2. killed at the last moment: syn_color's JSON fully written, not yet renamed
    flag = tmp_path / "paused"
    log = tmp_path / "eval2.log"
    proc = _start(cmd, _pause(env, out, flag, "syn_color.json", 1), tmp_path, log)
    _wait_for(flag.exists, proc, log, 120, "the pause before renaming syn_color.json", step=0.05)
    time.sleep(0.1)  # the flag is written just before the sleep
    src, dst = flag.read_text().split()
    _kill(proc)
    assert Path(dst) == (out / "syn_color.json").resolve()
    assert Path(src).name.startswith(".syn_color.json.") and json.loads(Path(src).read_text())["n"] == 4
    assert not (out / "syn_color.json").exists() and not (out / "syn_count.json").exists()

    # 3. the rerun writes every output
    subprocess.run(cmd, env=env, cwd=tmp_path, check=True, capture_output=True)
    for b in ("syn_color", "syn_count"):
        rec = json.loads((out / f"{b}.json").read_text())
        assert rec["benchmark"] == b and rec["n"] == 4
        assert len((out / f"{b}.samples.jsonl").read_text().splitlines()) == 4


# --------------------------------------------------------------------------- snakemake
def test_kill_snakemake_mid_job_then_rerun_incomplete(env, tmp_path):
    """SIGKILL to Snakemake and its job while evaluate_base is between its two outputs: one
    complete JSON exists, Snakemake marked both incomplete and left its lock. `--unlock`, then
    a rerun with `--rerun-incomplete` (set by profiles/local and profiles/slurm) redoes the job."""
    wd = tmp_path / "wf"
    wd.mkdir()
    (wd / "config.yaml").write_text(TINY_CONFIG)
    smk = [str(BIN / "snakemake"), "--snakefile", str(ROOT / "workflow/Snakefile"), "--directory", str(wd),
           "--configfile", str(wd / "config.yaml"), "--cores", "2"]
    evals = wd / "results/kill/seed0/evals/base"
    flag = tmp_path / "paused"
    log = tmp_path / "smk1.log"
    # the job writes syn_count.json, then syn_color.json: pause before the second rename
    proc = _start(smk + ["evaluate_bases"], _pause(env, evals, flag, ".json", 2), wd, log)
    _wait_for(flag.exists, proc, log, 240, "the pause before the job's second output", step=0.05)
    time.sleep(0.1)
    _kill(proc)
    assert (evals / "syn_count.json").is_file() and not (evals / "syn_color.json").exists()
    assert len(list((wd / ".snakemake/incomplete").iterdir())) == 2

    def run(*args):
        return subprocess.run(smk + list(args), env=env, cwd=wd, capture_output=True, text=True, timeout=300)

    p = run("-n", "evaluate_bases")  # without --rerun-incomplete the complete-looking file is refused
    assert p.returncode != 0 and "IncompleteFilesException" in p.stdout + p.stderr
    assert "results/kill/seed0/evals/base/syn_count.json" in p.stdout + p.stderr
    p = run("--rerun-incomplete", "evaluate_bases")  # the kill also left Snakemake's lock
    assert p.returncode != 0 and "--unlock" in p.stdout + p.stderr
    assert run("--unlock").returncode == 0
    p = run("--rerun-incomplete", "evaluate_bases")
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert "evaluate_base" in p.stdout + p.stderr and "build_base" not in p.stdout + p.stderr
    for b in ("syn_color", "syn_count"):
        rec = json.loads((evals / f"{b}.json").read_text())
        assert rec["benchmark"] == b and rec["n"] == 4
    assert not list((wd / ".snakemake/incomplete").iterdir())
    assert "Nothing to be done" in (lambda q: q.stdout + q.stderr)(run("-n", "evaluate_bases"))


# --------------------------------------------------------------------------- the helpers
def test_atomic_helpers_modes_and_failures(tmp_path):
    from lmmcl.atomic import atomic_dir, atomic_path, atomic_paths, atomic_write_bytes

    umask = os.umask(0o022)
    os.umask(umask)
    f = atomic_write_bytes(tmp_path / "a" / "x.bin", b"1")
    assert f.read_bytes() == b"1" and f.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600

    with pytest.raises(RuntimeError), atomic_path(tmp_path / "a" / "x.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("writer failed")
    assert f.read_bytes() == b"1" and sorted(p.name for p in f.parent.iterdir()) == ["x.bin"]

    outs = [tmp_path / "s" / "train.parquet", tmp_path / "s" / "test.parquet"]
    with pytest.raises(RuntimeError), atomic_paths(outs) as tmps:
        tmps[0].write_text("t")
        raise RuntimeError("second split failed")
    assert list((tmp_path / "s").iterdir()) == []  # none of the set appears
    with atomic_paths(outs) as tmps:
        for t, text in zip(tmps, ("train", "test")):
            t.write_text(text)
    assert [p.read_text() for p in outs] == ["train", "test"] and len(list((tmp_path / "s").iterdir())) == 2

    d = tmp_path / "ckpt"
    with atomic_dir(d) as tmp:
        (tmp / "old.json").write_text("{}")
    with pytest.raises(RuntimeError), atomic_dir(d) as tmp:
        (tmp / "new.json").write_text("{")
        raise RuntimeError("save failed")
    assert [p.name for p in d.iterdir()] == ["old.json"] and [p.name for p in tmp_path.iterdir() if "ckpt" in p.name] == ["ckpt"]
    with atomic_dir(d) as tmp:
        (tmp / "new.json").write_text("{}")
    assert [p.name for p in d.iterdir()] == ["new.json"]  # replaced, not merged
    assert d.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700


def test_truncated_resume_marker_is_not_fatal(tmp_path):
    """A resume marker cut off by a kill (written before it was atomic) means: start over."""
    from lmmcl.train.trainer import resumable_checkpoint

    work = tmp_path / "work"
    (work / "checkpoint-4").mkdir(parents=True)
    (work / "resume_key.json").write_text('{"ke')
    assert resumable_checkpoint(work, "abc") is None
    assert json.loads((work / "resume_key.json").read_text()) == {"key": "abc"}
    assert not (work / "checkpoint-4").exists()
