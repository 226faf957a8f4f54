"""The dependency lock: write it from a verified environment, check an environment against it.

    python requirements/lock.py write --python .lock-venv/bin/python   # `make lock` calls this
    python requirements/lock.py check [--python .venv/bin/python]      # drift check (make install, CI)

`write` freezes every distribution of the given (freshly built, smoke-tested) environment into
requirements/lock.txt, resolves requirements/cluster.txt on top of it (pip's dry-run report, nothing
installed) and writes the GPU-cluster variant requirements/lock-cluster.txt and envs/lmmcl.yaml
from the same pins. `check` compares `pip freeze` of an environment with lock.txt and exits 1
naming every package that is missing, extra, or at another version. Standard library only: it
runs before anything is installed.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQ = ROOT / "requirements"
LOCK = REQ / "lock.txt"
CLUSTER_DIRECT = REQ / "cluster.txt"
NODEPS = REQ / "nodeps.txt"
CLUSTER_LOCK = REQ / "lock-cluster.txt"
CONDA_ENV = ROOT / "envs" / "lmmcl.yaml"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*(?:#.*)?$")


def normalize(name: str) -> str:
    """PEP 503 name: case and runs of -_. do not matter."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_pins(lines) -> tuple[dict[str, tuple[str, str]], list[str]]:
    """`name==version` lines -> {normalized: (name, version)}; other non-comment lines returned apart
    (a freeze prints `name @ url` for a package installed from a URL: not reproducible by a pin)."""
    pins, other = {}, []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if m:
            pins[normalize(m.group(1))] = (m.group(1), m.group(2))
        else:
            other.append(line)
    return pins, other


def read_lock(path: Path | None = None) -> dict[str, tuple[str, str]]:
    path = path or LOCK
    pins, other = parse_pins(path.read_text().splitlines())
    if other:
        raise SystemExit(f"{path}: lines that are not name==version: {other}")
    return pins


def freeze(python: str) -> list[str]:
    """Every distribution of that environment except editable installs (the project itself)."""
    out = subprocess.run([python, "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    return out.splitlines()


def diff(locked: dict, installed: dict, installed_other: list[str]) -> list[str]:
    """Human-readable differences between the lock and an installed set; empty = identical."""
    problems = []
    for key in sorted(set(locked) | set(installed)):
        if key not in installed:
            problems.append(f"missing   {locked[key][0]}=={locked[key][1]} (locked, not installed)")
        elif key not in locked:
            problems.append(f"extra     {installed[key][0]}=={installed[key][1]} (installed, not in the lock)")
        elif locked[key][1] != installed[key][1]:
            problems.append(f"version   {locked[key][0]}: locked {locked[key][1]}, installed {installed[key][1]}")
    problems += [f"unpinned  {line} (installed from a URL or path)" for line in installed_other]
    return problems


def check(python: str) -> int:
    installed, other = parse_pins(freeze(python))
    problems = diff(read_lock(), installed, other)
    if problems:
        print(f"The environment of {python} differs from {LOCK.relative_to(ROOT)} "
              f"({len(problems)} package(s)):", file=sys.stderr)
        for p in problems:
            print("  " + p, file=sys.stderr)
        print("Reinstall (`rm -rf .venv && make install`) or, to change the lock on purpose, "
              "edit requirements/direct.txt and run `make lock`.", file=sys.stderr)
        return 1
    print(f"{len(installed)} installed distributions match {LOCK.relative_to(ROOT)}")
    return 0


def resolve_extra(python: str, requirements: Path) -> list[tuple[str, str]]:
    """What installing `requirements` into that environment would add (pip's dry-run report);
    nothing for a file without requirement lines (pip refuses an empty `-r`).
    --no-build-isolation: an sdist such as deepspeed's imports torch to report its metadata."""
    if not any(line.strip() and not line.lstrip().startswith("#") for line in requirements.read_text().splitlines()):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([python, "-m", "pip", "install", "-q", "--dry-run", "--no-build-isolation",
                        "--report", str(report), "-r", str(requirements)], check=True)
        items = json.loads(report.read_text())["install"]
    return sorted(((i["metadata"]["name"], i["metadata"]["version"]) for i in items),
                  key=lambda nv: normalize(nv[0]))


def _public(version: str) -> str:
    """2.13.0+cpu -> 2.13.0: on a GPU cluster the same release comes as PyPI's CUDA build."""
    return version.split("+", 1)[0]


def cluster_pins(locked: dict, extra: list[tuple[str, str]]) -> list[str]:
    nodeps = set(parse_pins(NODEPS.read_text().splitlines())[0])
    pins = {k: (n, _public(v)) for k, (n, v) in locked.items() if k not in nodeps}
    pins.update({normalize(n): (n, v) for n, v in extra})
    return [f"{n}=={v}" for _, (n, v) in sorted(pins.items())]


HEADER = """# GENERATED by `make lock` (requirements/lock.py) from requirements/{source}: do not edit by hand.
# {what}
"""


def write(python: str) -> None:
    installed, other = parse_pins(freeze(python))
    if other:
        raise SystemExit(f"cannot lock packages installed from a URL or path: {other}")
    lines = [f"{n}=={v}" for _, (n, v) in sorted(installed.items())]
    LOCK.write_text(HEADER.format(
        source="direct.txt + nodeps.txt",
        what="Every distribution of the verified CPU environment (.venv), installed with "
             "`pip install --no-deps -r requirements/lock.txt`.") + "\n".join(lines) + "\n")
    cluster = cluster_pins(installed, resolve_extra(python, CLUSTER_DIRECT))
    CLUSTER_LOCK.write_text(HEADER.format(
        source="lock.txt + cluster.txt",
        what="A GPU cluster environment: the same pins with PyPI's CUDA torch (its CUDA libraries "
             "are pinned by torch itself)\n# plus DeepSpeed. Install: pip install -r "
             "requirements/lock-cluster.txt && pip install --no-deps -r requirements/nodeps.txt")
        + "\n".join(cluster) + "\n")
    CONDA_ENV.write_text(
        "# GENERATED by `make lock` (requirements/lock.py) from requirements/lock-cluster.txt: do not edit.\n"
        "# The one conda environment of every rule (`snakemake --sdm conda`); envs/lmmcl.post-deploy.sh\n"
        "# then adds lmms-eval without its requirement list and installs lmmcl itself.\n"
        "name: lmmcl\nchannels: [conda-forge]\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n"
        + "".join(f"      - {line}\n" for line in cluster))
    print(f"locked {len(lines)} distributions -> {LOCK.relative_to(ROOT)}; "
          f"{len(cluster)} -> {CLUSTER_LOCK.relative_to(ROOT)}, {CONDA_ENV.relative_to(ROOT)}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["write", "check"])
    ap.add_argument("--python", default=str(ROOT / ".venv" / "bin" / "python"),
                    help="interpreter of the environment to freeze or check (default: .venv)")
    args = ap.parse_args(argv)
    if args.action == "write":
        write(args.python)
        return 0
    return check(args.python)


if __name__ == "__main__":
    sys.exit(main())
