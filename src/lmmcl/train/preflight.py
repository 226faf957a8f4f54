"""Cheap checks of a stage's inputs, run before its model is loaded.

Loading a real checkpoint takes minutes and GPU memory; a stage whose parent, recipe or data is
wrong should say so first. Each check raises `FileNotFoundError` / `ValueError` naming the bad
item and what is allowed (the CLI turns them into one `lmmcl <cmd>: error: ...` line).
"""
from __future__ import annotations

import json
from pathlib import Path


def checkpoint_model_type(checkpoint: str) -> str | None:
    """`model_type` of a checkpoint's config.json: read from a local folder, or fetched alone
    (no weights) for a hub id. None when it cannot be read (offline and not cached)."""
    local = Path(checkpoint)
    if local.is_dir():
        cfg = local / "config.json"
        return json.loads(cfg.read_text()).get("model_type") if cfg.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        from ..models.io import split_revision

        repo, revision = split_revision(checkpoint)  # "owner/name@revision" of a pinned model.revision
        return json.loads(Path(hf_hub_download(repo, "config.json", revision=revision)).read_text()).get("model_type")
    except Exception:  # offline / not cached / no such repo: loading the model reports it
        return None


def check_family(family: str | None, checkpoint: str, where: str, model_type: str | None = None,
                 family_key: str = "its manifest's family") -> None:
    """`checkpoint` must be a model of `family`: its config.json `model_type` (`model_type`, or
    read by `checkpoint_model_type`) is the family's. Unknown model types pass (nothing to say)."""
    from ..models.families import FAMILIES, get_family

    if family is None:
        return
    expected = get_family(family).model_type
    got = model_type if model_type is not None else checkpoint_model_type(checkpoint)
    if got is None or got == expected:
        return
    owners = sorted(f.name for f in FAMILIES.values() if f.model_type == got)
    of = f" (family {', '.join(owners)})" if owners else " (no lmmcl family)"
    raise ValueError(f"{where}: checkpoint {checkpoint} is a {got!r} model{of}, but {family_key} is {family!r}; "
                     f"allowed: a {family} checkpoint (config.json model_type {expected!r})")


def check_parent(parent_manifest: str | Path) -> str:
    """The parent's checkpoint (as `checkpoint_of` gives it), after checking that the manifest
    exists, points at a checkpoint and that checkpoint belongs to the manifest's family."""
    from ..models.io import checkpoint_of, read_manifest

    path = Path(parent_manifest)
    if not path.is_file():
        raise FileNotFoundError(f"parent manifest not found: {path}; allowed: the manifest.json of a finished "
                                f"base or stage (written last by lmmcl build-base / train-stage)")
    try:
        parent = read_manifest(path)
    except ValueError as e:  # JSONDecodeError: a truncated or hand-edited manifest
        raise ValueError(f"{path}: not a readable manifest ({e}); allowed: the JSON written by lmmcl") from None
    if not parent.get("checkpoint"):
        raise ValueError(f"{path}: no checkpoint (manifest key 'checkpoint' is {parent.get('checkpoint')!r}); "
                         f"allowed: a checkpoint folder or hub id (a real family's base needs config "
                         f"model.checkpoint)")
    if parent.get("checkpoint_is_local", True):
        folder = (path.parent / parent["checkpoint"]).resolve()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{path}: checkpoint folder {folder} is missing or has no config.json; allowed: "
                                    f"a manifest next to its saved checkpoint (rerun the stage that wrote it)")
    ckpt = checkpoint_of(path)
    from ..hubcache import require_model
    from ..models.delta import chain

    require_model(chain(ckpt)[0])  # offline job: the hub checkpoint under the chain is cached, or a clear error
    check_family(parent.get("family"), ckpt, where=f"parent {path}")
    return ckpt


def check_data(paths) -> None:
    """Every training split exists, is parquet with the contract's columns and has only
    well-formed rows (lmmcl.data.contract.validate_split with rows)."""
    from ..data.contract import validate_split

    if not paths:
        raise ValueError("no training data given; allowed: one or more parquet splits")
    for p in paths:
        validate_split(p, rows=True)


def check_stage_inputs(parent_manifest, data, *, recipe: str, extra_recipes: dict | None = None,
                       method_spec: dict | None = None) -> str:
    """All of a stage's checks: parent and its family, method keys, recipe name, data rows.
    Returns the parent's checkpoint (as `checkpoint_of` gives it)."""
    from .. import recipes
    from . import methods

    ckpt = check_parent(parent_manifest)
    spec = methods.method_spec((method_spec or {}).get("method", methods.DEFAULT_METHOD), method_spec or {},
                               where="method_spec")
    if not (recipe == methods.NO_RECIPE and spec["method"] in methods.RECIPE_OPTIONAL):
        recipes.get_recipe(recipe, extra_recipes)  # ValueError: unknown recipe ..., allowed: [...]
    check_data(data)
    return ckpt
