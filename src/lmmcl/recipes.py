"""Recipes as data: which parameters a stage trains.

A recipe is a list of regexes (`include`, optional `exclude`) over in-memory parameter names,
written with `{role}` placeholders that each model family resolves (registry/families.yaml).
Built-ins live in registry/recipes.yaml; configs may add their own under `recipes:`.

    from lmmcl import recipes
    report = recipes.apply(model, "sa_proj")   # freezes everything else, returns the report
    recipes.apply(model, "last_n_layers", last_n_layers=8)   # a parameterised recipe

`last_n_layers: N` in a recipe selects the LLM decoder layers with index >= L - N (L counted
from the model's own parameter names) on top of its `include` patterns.
"""
from __future__ import annotations

import re

from . import registry
from .models.families import Family, family_of_model, get_family

RECIPE_KEYS = {"include", "exclude", "description", "last_n_layers"}


def all_recipes(extra: dict | None = None) -> dict:
    """Built-in recipes plus user-defined ones (`extra` wins on a name clash)."""
    merged = dict(registry.recipes())
    for name, spec in (extra or {}).items():
        unknown = set(spec) - RECIPE_KEYS
        if unknown:
            raise ValueError(f"recipe {name!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(RECIPE_KEYS)}")
        _check_spec(name, spec)
        merged[name] = spec
    return merged


def _check_spec(name: str, spec: dict):
    if not spec.get("include") and not spec.get("last_n_layers"):
        raise ValueError(f"recipe {name!r}: `include` must list at least one pattern (or set `last_n_layers`)")
    n = spec.get("last_n_layers")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise ValueError(f"recipe {name!r}: last_n_layers must be a positive integer, got {n!r}")


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
    inc = resolve_patterns(recipe.get("include", []), family)
    exc = resolve_patterns(recipe.get("exclude", []), family)
    chosen = {n for n in names if any(p.search(n) for p in inc)}
    if recipe.get("last_n_layers"):
        chosen |= set(last_layers(names, int(recipe["last_n_layers"]), family))
    return [n for n in names if n in chosen and not any(p.search(n) for p in exc)]


def last_layers(names: list[str], n: int, family: Family) -> list[str]:
    """Parameters of the last `n` LLM decoder layers (index >= L - n)."""
    layer = re.compile("(?:" + family.roles["llm_layers"] + r")\.(\d+)\.")
    idx = {name: int(m.group(1)) for name in names if (m := layer.search(name))}
    if not idx:
        return []
    total = max(idx.values()) + 1
    if n > total:
        raise ValueError(f"last_n_layers={n} but the LLM of family {family.name} has {total} layers")
    return [name for name, i in idx.items() if i >= total - n]


def _module_names(param_names: list[str]) -> list[str]:
    """Parameter names without the trailing `.weight`/`.bias`, in order, deduplicated."""
    seen = {}
    for n in param_names:
        seen.setdefault(n.rsplit(".", 1)[0] if n.endswith((".weight", ".bias")) else n, None)
    return list(seen)


def apply(model, recipe: str | dict, family: str | Family | None = None, extra: dict | None = None,
          **params) -> dict:
    """Make exactly the recipe's parameters trainable; return the trainable-parameter report.

    `recipe` is a built-in name (or one of `extra`, the config's user recipes) or a spec dict
    (`include`, `exclude`, `last_n_layers`); `params` override spec keys, e.g.
    `apply(model, "last_n_layers", last_n_layers=8)`. The family is found from the model class.
    Raises ValueError if the recipe matches no parameter (a typo must not train nothing).
    """
    fam = get_family(family) if isinstance(family, str) else (family or family_of_model(model))
    name = recipe if isinstance(recipe, str) else recipe.get("name", "custom")
    spec = dict(get_recipe(recipe, extra) if isinstance(recipe, str) else recipe)
    unknown = set(params) - (RECIPE_KEYS - {"description"})
    if unknown:
        raise ValueError(f"recipe {name!r}: unknown parameter(s) {sorted(unknown)}; allowed: "
                         f"{sorted(RECIPE_KEYS - {'description'})}")
    spec.update(params)
    _check_spec(name, spec)
    params_by_name = dict(model.named_parameters())
    chosen = set(select(list(params_by_name), spec, fam))
    if not chosen:
        raise ValueError(f"recipe {name!r} matches no parameter of family {fam.name} "
                         f"(patterns {spec.get('include', [])}); check the patterns against named_parameters()")
    for n, p in params_by_name.items():
        p.requires_grad_(n in chosen)
    return report(model, name, spec)


def trainable_counts(model) -> dict:
    """Trainable vs total parameters of `model` and the trainable modules, in order."""
    total = trainable = 0
    trainable_names = []
    for n, p in model.named_parameters():
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
            trainable_names.append(n)
    return {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_share": trainable / total if total else 0.0,
        "trainable_tensors": len(trainable_names),
        "modules": _module_names(trainable_names),
    }


def report(model, name: str, spec: dict) -> dict:
    return {
        "recipe": name,
        "include": list(spec.get("include", [])),
        "exclude": list(spec.get("exclude", [])),
        **({"last_n_layers": spec["last_n_layers"]} if spec.get("last_n_layers") else {}),
        **trainable_counts(model),
    }


def named_roles(spec: dict) -> set[str] | None:
    """The roles a recipe's `include` patterns name (`last_n_layers` names `llm_layers`); None
    when a pattern names no role (e.g. `full`'s `.*`): such a recipe may select anything."""
    roles = {"llm_layers"} if spec.get("last_n_layers") else set()
    for pat in spec.get("include", []):
        named = re.findall(r"\{(\w+)\}", pat)
        if not named:
            return None
        roles.update(named)
    return roles


def check_recipes(names: list[str], family: Family, specs: dict | None = None) -> list[str]:
    """What is wrong with the recipes (default: the built-ins) on a model's parameter names of
    `family`; [] when nothing. Each recipe selects at least one tensor, and only tensors of the
    roles it names: `sa_proj` (`{llm_layers}...self_attn...`) no vision-tower tensor. A recipe
    naming no role selects every tensor (`full`) or tensors of one component only: a substring
    such as the study's `self_attn\\.q_proj` that reaches both a vision tower and the LLM is named."""
    from .models.families import TOP_ROLES

    problems = []
    top = {r: re.compile(family.roles[r]) for r in TOP_ROLES}
    for name, spec in (specs or registry.recipes()).items():
        if spec.get("last_n_layers"):  # more layers than the model has (the tiny default: 2) -> all of them
            layer = re.compile("(?:" + family.roles["llm_layers"] + r")\.(\d+)\.")
            n_layers = len({m.group(1) for n in names if (m := layer.search(n))})
            spec = {**spec, "last_n_layers": max(1, min(spec["last_n_layers"], n_layers))}
        chosen = select(names, spec, family)
        if not chosen:
            problems.append(f"recipe {name} selects no parameter of family {family.name}")
        roles = named_roles(spec)
        if roles is None:
            parts = {r: sum(bool(p.search(n)) for n in chosen) for r, p in top.items()}
            if len(chosen) < len(names) and sum(bool(v) for v in parts.values()) > 1:
                problems.append(f"recipe {name} names no role and selects tensors of several components "
                                f"({', '.join(f'{r} {v}' for r, v in parts.items() if v)}) in family {family.name}: "
                                f"anchor it with role placeholders, e.g. {{llm_layers}}")
            continue
        pats = [re.compile(family.roles[r]) for r in roles]
        outside = [n for n in chosen if not any(p.search(n) for p in pats)]
        if outside:
            problems.append(f"recipe {name} (roles {sorted(roles)}) selects {len(outside)} tensor(s) outside them "
                            f"in family {family.name}, e.g. {outside[:2]}")
    return problems


def role_of(name: str, family: Family, roles: list[str]) -> str | None:
    """First role (in the given order) whose pattern matches the parameter name."""
    for role in roles:
        if re.search(family.roles[role], name):
            return role
    return None


def count_table(families: list[str] | None = None, names: list[str] | None = None) -> list[dict]:
    """Trainable-parameter count of every recipe on every family's default-checkpoint model,
    built on the meta device from the shipped config.json (no weights, no download)."""
    from .models.families import FAMILIES
    from .models.meta import build_meta

    rows = []
    for fam in families or [f for f in FAMILIES if FAMILIES[f].hf_config]:
        model = build_meta(fam)
        for name in names or list(registry.recipes()):
            try:
                r = apply(model, name, family=fam)
                rows.append({"family": fam, "recipe": name, "trainable_params": r["trainable_params"],
                             "total_params": r["total_params"], "trainable_share": r["trainable_share"]})
            except ValueError:  # e.g. a role this family does not have
                rows.append({"family": fam, "recipe": name, "trainable_params": None,
                             "total_params": None, "trainable_share": None})
    return rows


def format_count_table(rows: list[dict]) -> str:
    """Markdown: recipes × families, millions of trainable parameters (share of the model), the
    meta-device total and the published count (with the total's difference from it)."""
    fams = list(dict.fromkeys(r["family"] for r in rows))
    names = list(dict.fromkeys(r["recipe"] for r in rows))
    cell = {(r["family"], r["recipe"]): r for r in rows}
    head = "| recipe | " + " | ".join(f"{f} ({get_family(f).default_checkpoint or 'tiny'})" for f in fams) + " |"
    lines = [head, "|---|" + "---:|" * len(fams)]
    for n in names:
        vals = []
        for f in fams:
            r = cell[(f, n)]
            vals.append("—" if r["trainable_params"] is None else
                        f"{r['trainable_params'] / 1e6:,.1f}M ({100 * r['trainable_share']:.1f}%)")
        lines.append(f"| {n} | " + " | ".join(vals) + " |")
    totals = {f: next(r["total_params"] for r in rows if r["family"] == f and r["total_params"]) for f in fams}
    lines.append("| (total) | " + " | ".join(f"{totals[f] / 1e6:,.1f}M" for f in fams) + " |")
    published = {f: get_family(f).published_params for f in fams}
    if any(published.values()):  # registry/families.yaml: published_params, published_source
        lines.append("| (published) | " + " | ".join(
            "—" if not published[f] else f"{published[f] / 1e6:,.0f}M ({100 * (totals[f] / published[f] - 1):+.2f}%)"
            for f in fams) + " |")
    return "\n".join(lines)
