"""The dependency lock (requirements/lock.py): drift detection, and every install path on the same pins."""
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("lockfile", ROOT / "requirements" / "lock.py")
lockfile = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lockfile)


def test_parse_and_diff_name_every_difference():
    locked, _ = lockfile.parse_pins(["# header", "filelock==4.2.12", "Jinja2==3.1.6", "torch==2.13.0+cpu",
                                     "gone==1.0"])
    installed, other = lockfile.parse_pins(["filelock==4.3.1", "jinja2==3.1.6", "torch==2.13.0+cpu",
                                            "surprise==0.1", "mypkg @ file:///tmp/mypkg"])
    problems = lockfile.diff(locked, installed, other)
    assert problems == [
        "version   filelock: locked 4.2.12, installed 4.3.1",
        "missing   gone==1.0 (locked, not installed)",
        "extra     surprise==0.1 (installed, not in the lock)",
        "unpinned  mypkg @ file:///tmp/mypkg (installed from a URL or path)",
    ]
    assert lockfile.diff(locked, locked, []) == []
    # PEP 503: Jinja2 and jinja2, typing_extensions and typing-extensions are one package
    assert lockfile.normalize("typing_extensions") == lockfile.normalize("Typing.Extensions")


def test_check_fails_naming_the_drifted_package(tmp_path, monkeypatch, capsys):
    lock = tmp_path / "lock.txt"
    lock.write_text("# generated\nfilelock==4.2.12\nsix==1.17.0\n")
    monkeypatch.setattr(lockfile, "LOCK", lock)
    monkeypatch.setattr(lockfile, "ROOT", tmp_path)
    monkeypatch.setattr(lockfile, "freeze", lambda python: ["filelock==4.3.1", "six==1.17.0"])
    assert lockfile.check("python") == 1
    err = capsys.readouterr().err
    assert "filelock: locked 4.2.12, installed 4.3.1" in err and "six" not in err
    monkeypatch.setattr(lockfile, "freeze", lambda python: ["filelock==4.2.12", "six==1.17.0"])
    assert lockfile.check("python") == 0


def test_this_environment_is_the_lock():
    """`make test` runs in .venv: every distribution there (the project aside) is pinned in the lock."""
    if not Path(sys.prefix, "bin", "python").exists() or Path(sys.prefix).resolve() != (ROOT / ".venv").resolve():
        pytest.skip("not running in the project's .venv")
    assert lockfile.check(sys.executable) == 0


def test_direct_requirements_are_what_the_lock_holds():
    locked = lockfile.read_lock()
    for path in ("direct.txt", "nodeps.txt"):
        pins, other = lockfile.parse_pins((ROOT / "requirements" / path).read_text().splitlines())
        for key, (name, version) in pins.items():
            assert key in locked, f"{path}: {name} is not in the lock"
            assert lockfile._public(locked[key][1]) == version, f"{path}: {name}=={version}, lock {locked[key][1]}"
        # ranges (known-bad releases kept out) hold for the locked version
        for line in other:
            m = re.match(r"([A-Za-z0-9._-]+)<([0-9.]+)$", line)
            assert m, f"{path}: unexpected requirement line {line!r}"
            locked_v = tuple(int(x) for x in locked[lockfile.normalize(m.group(1))][1].split("."))
            assert locked_v < tuple(int(x) for x in m.group(2).split("."))


def test_cluster_lock_and_conda_env_carry_the_same_pins():
    locked = lockfile.read_lock()
    cluster = lockfile.read_lock(lockfile.CLUSTER_LOCK)
    env = yaml.safe_load(lockfile.CONDA_ENV.read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == [f"{n}=={v}" for _, (n, v) in sorted(cluster.items())]
    assert "lmms-eval" not in cluster                       # installed --no-deps by the post-deploy step
    assert cluster["torch"][1] == "2.13.0"                   # PyPI's CUDA build of the same release
    assert "deepspeed" in cluster
    for key, (name, version) in locked.items():
        if key != "lmms-eval":
            assert cluster[key][1] == lockfile._public(version), name
    post_deploy = (ROOT / "envs" / "lmmcl.post-deploy.sh").read_text()
    assert "--no-deps -r requirements/nodeps.txt" in post_deploy
