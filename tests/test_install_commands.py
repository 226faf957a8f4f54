"""What `make install` runs, checked offline: the lock needs no index option but PyTorch's CPU index
for its one local-version pin, the Makefile falls back to that index, and docs/install.md shows the
Makefile's commands as they are."""
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def pins(path: Path) -> list[str]:
    return [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]


def test_the_lock_names_no_index_and_only_torch_is_a_cpu_build():
    for lock in ("lock.txt", "lock-cluster.txt"):
        lines = pins(ROOT / "requirements" / lock)
        options = [l for l in lines if l.startswith("-")]
        assert options == [], f"{lock}: index/link options belong to the Makefile, not the lock: {options}"
    local = [l for l in pins(ROOT / "requirements/lock.txt") if "+" in l]
    assert local == [l for l in local if l.startswith("torch==") and l.endswith("+cpu")] and len(local) == 1
    assert not [l for l in pins(ROOT / "requirements/lock-cluster.txt") if "+" in l]  # PyPI's CUDA torch


def install_commands() -> list[str]:
    """`make -n -B install`: the recipe as make runs it, with `.` for this checkout."""
    import os

    # under `make test` this is a sub-make: without the parent's MAKEFLAGS/MAKELEVEL it prints no
    # "make[1]: Entering directory" lines
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(["make", "--no-print-directory", "-n", "-B", "install"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    return [l.replace(str(ROOT), ".") for l in out.splitlines() if l.strip()]


def test_make_install_takes_torch_from_the_cpu_index_only_when_pip_lacks_it():
    cmds = install_commands()
    torch_local = next(i for i, l in enumerate(cmds) if "'^torch=='" in l and "--extra-index-url" not in l)
    assert cmds[torch_local].endswith("2>/dev/null || \\")        # its failure leads to the fallback
    fallback = " ".join(cmds[torch_local + 1:torch_local + 3])
    assert f"--extra-index-url {CPU_INDEX}" in fallback and "--no-deps" in fallback
    assert not any(CPU_INDEX in l for l in cmds[:torch_local]), "the index is a fallback, not an option of every install"
    rest = cmds[torch_local + 3:]
    assert any("--no-deps -r requirements/lock.txt" in l for l in rest) and not any(CPU_INDEX in l for l in rest)


def test_docs_show_the_makefiles_install_commands():
    doc = (ROOT / "docs/install.md").read_text()
    block = re.search(r"## What `make install` runs.*?```bash\n(.*?)```", doc, re.S)
    assert block, "docs/install.md lacks its 'What `make install` runs' block"
    assert block.group(1).splitlines() == install_commands()
