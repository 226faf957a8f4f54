"""Recipes as data: which parameters a stage trains.

A recipe is a list of regexes (`include`, optional `exclude`) over in-memory parameter names,
written with `{role}` placeholders that each model family resolves (models/families.py).
Built-ins live in registry/recipes.yaml; configs may add their own under `recipes:`.

    from lmmcl import recipes
    report = recipes.apply(model, "sa_proj")   # freezes everything else, returns the report
"""
from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import yaml

from .models.families import Family, family_of_model, get_family

RECIPE_KEYS = {"include", "exclude", "description"}


@lru_cache(maxsize=1)
def builtin_recipes() -> dict:
    text = resources.files("lmmcl").joinpath("registry/recipes.yaml").read_text()
    return yaml.safe_load(text)


def all_recipes(extra: dict | None = None) -> dict:
    """Built-in recipes plus user-defined ones (`extra` wins on a name clash)."""
    merged = dict(builtin_recipes())
    for name, spec in (extra or {}).items():
        unknown = set(spec) - RECIPE_KEYS
        if unknown:
            raise ValueError(f"recipe {name!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RECIPE_KEYS)}")
        if not spec.get("include"):
            raise ValueError(f"recipe {name!r}: `include` must list at least one pattern")
        merged[name] = spec
    return merged


def get_recipe(name: str, extra: dict | None = None) -> dict:
    recipes = all_recipes(extra)
    if name not in recipes:
        raise ValueError(f"unknown recipe {name!r}; allowed: {sorted(recipes)}")
    return recipes[name]


def resolve_patterns(patterns: list[str], family: Family) -> list[re.Pattern]:
    """Substitute `{role}` placeholders with the family's role regexes and compile."""
    def sub(m: re.Match) -> str:
        role = m.group(1)
        if role not in family.roles:
            raise ValueError(f"pattern {m.string!r} names role {role!r}; "
                             f"family {family.name} has roles {sorted(family.roles)}")
        return "(?:" + family.roles[role] + ")"  # role regexes carry their own ^ anchor

    return [re.compile(re.sub(r"\{(\w+)\}", sub, pat)) for pat in patterns]


def select(names: list[str], recipe: dict, family: Family) -> list[str]:
    inc = resolve_patterns(recipe["include"], family)
    exc = resolve_patterns(recipe.get("exclude", []), family)
    return [n for n in names if any(p.search(n) for p in inc) and not any(p.search(n) for p in exc)]


def _module_names(param_names: list[str]) -> list[str]:
    """Parameter names without the trailing `.weight`/`.bias`, in order, deduplicated."""
    seen = {}
    for n in param_names:
        seen.setdefault(n.rsplit(".", 1)[0] if n.endswith((".weight", ".bias")) else n, None)
    return list(seen)


def apply(model, recipe: str | dict, family: str | Family | None = None, extra: dict | None = None) -> dict:
    """Make exactly the recipe's parameters trainable; return the trainable-parameter report.

    Raises ValueError if the recipe matches no parameter (a typo must not train nothing).
    """
    fam = get_family(family) if isinstance(family, str) else (family or family_of_model(model))
    name = recipe if isinstance(recipe, str) else recipe.get("name", "custom")
    spec = get_recipe(recipe, extra) if isinstance(recipe, str) else recipe
    params = dict(model.named_parameters())
    chosen = set(select(list(params), spec, fam))
    if not chosen:
        raise ValueError(f"recipe {name!r} matches no parameter of family {fam.name} "
                         f"(patterns {spec['include']}); check the patterns against named_parameters()")
    for n, p in params.items():
        p.requires_grad_(n in chosen)
    return report(model, name, spec)


def report(model, name: str, spec: dict) -> dict:
    total = trainable = 0
    trainable_names = []
    for n, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            trainable_names.append(n)
    return {
        "recipe": name,
        "include": list(spec["include"]),
        "exclude": list(spec.get("exclude", [])),
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": trainable / total if total else 0.0,
        "trainable_tensors": len(trainable_names),
        "modules": _module_names(trainable_names),
    }


def role_of(name: str, family: Family, roles: list[str]) -> str | None:
    """First role (in the given order) whose pattern matches the parameter name."""
    for role in roles:
        if re.search(family.roles[role], name):
            return role
    return None
