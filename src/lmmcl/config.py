"""What a validated config means: the plan of stages, their hyperparameters, the benchmarks.

The JSON schema (workflow/schemas/config.schema.yaml) checks shapes and types; `Plan` checks
what a schema cannot (names that must exist in a registry, stage overrides for tasks that are
not in the sequence, duplicate tasks, a config's own skills and their rows, recipes against the
family's parameter names, scorers and method defaults) and raises `ConfigError` naming the bad
value and what is allowed, before any job runs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from . import recipes as recipe_registry
from . import registry
from .layout import stage_name
from .report.plan import DEFAULT_RESAMPLES
from .train.hparams import DEFAULT_HPARAMS, complete
from .train.methods import DEFAULT_METHOD, METHOD_DEFAULTS, NO_RECIPE, RECIPE_OPTIONAL, method_keys, method_spec

METHOD_KEYS = {"recipe", "method", "stages"}
# training methods (lmmcl.train.methods): sft and the baselines lora, lwf, wise_ft, moe
METHODS = set(METHOD_DEFAULTS)
# a hub revision in evaluation.revisions (commit sha, tag, branch; the schema has the same pattern)
REVISION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")


class ConfigError(ValueError):
    pass


def resolve_sequence(cfg: dict) -> list[str]:
    """`sequence` as a list of tasks, or the name of one of the named `sequences`."""
    seq = cfg["sequence"]
    if isinstance(seq, str):
        named = cfg.get("sequences") or {}
        if seq not in named:
            raise ConfigError(f"sequence: {seq!r} is not one of the named sequences {sorted(named)}")
        return list(named[seq])
    return list(seq)


@dataclass(frozen=True)
class Stage:
    method: str
    k: int
    task: str

    @property
    def name(self) -> str:
        return stage_name(self.k, self.task)


def resolve_seeds(cfg: dict) -> list[int]:
    """The run seeds: `seeds` (a list) or the single `seed` (default 0), not both."""
    if "seeds" in cfg and "seed" in cfg:
        raise ConfigError(f"seed: {cfg['seed']!r} and seeds: {cfg['seeds']!r} both given; keep `seeds` "
                          f"(one run per seed) or `seed` (a single run)")
    seeds = cfg.get("seeds", [cfg.get("seed", 0)])
    if not seeds or len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds: {seeds!r}; allowed: a non-empty list of distinct integers >= 0")
    return [int(s) for s in seeds]


def resolve_methods(cfg: dict) -> dict:
    """`methods` plus the methods of the `sweep` grid (lmmcl.sweep), which must not reuse a name."""
    from . import sweep

    methods = dict(cfg.get("methods") or {})
    if cfg.get("sweep"):
        try:
            swept = sweep.expand(cfg["sweep"])
        except ValueError as e:
            raise ConfigError(str(e)) from None
        clash = sorted(set(swept) & set(methods))
        if clash:
            raise ConfigError(f"sweep: method name(s) {clash} also in `methods`; rename those methods")
        methods.update(swept)
    return methods


class Plan:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.experiment = cfg["experiment"]
        self.sequence: list[str] = list(resolve_sequence(cfg))
        self.seeds: list[int] = resolve_seeds(cfg)
        self.methods: dict = resolve_methods(cfg)
        self.stage_cfg: dict = cfg.get("stages") or {}
        self.extra_recipes: dict = cfg.get("recipes") or {}
        # the config's own skills (`skills:`, lmmcl.data.declared), declared in the registry before
        # anything reads it: each is a task and a benchmark of its name
        self.skills: dict = self._declare_skills()
        b = cfg.get("benchmarks") or {}
        self.target = list(b.get("target") or [registry.benchmark_of_task(t) for t in self.sequence])
        self.held_out = list(b.get("held_out") or [])
        self.extra = list(b.get("extra") or [])
        self.check()

    # ---- checks ---------------------------------------------------------------------------
    def check(self):
        self._check_model()
        self._check_launch()
        if not self.sequence:
            raise ConfigError(f"sequence: empty; list at least one task (one stage each); allowed: "
                              f"{self._trainable_tasks()}")
        seen = set()
        for t in self.sequence:
            if t in seen:
                raise ConfigError(f"sequence: task {t!r} appears twice; each task is one stage")
            seen.add(t)
        benchmarks = registry.benchmarks()
        for group, names in (("target", self.target), ("held_out", self.held_out), ("extra", self.extra)):
            for n in names:
                if n not in benchmarks:
                    raise ConfigError(f"benchmarks.{group}: unknown benchmark {n!r}; allowed: {sorted(benchmarks)}")
        for t in self.sequence:
            if registry.benchmark_of_task(t) not in benchmarks:
                tasks = sorted({registry.task_of_benchmark(b) for b in benchmarks})
                raise ConfigError(f"sequence: unknown task {t!r} (no benchmark measures it); allowed: {tasks}")
        self._check_skills()
        self._check_datasets()
        self._check_scorers()
        self._check_revisions()
        dup = set(self.target) & set(self.held_out) | set(self.target) & set(self.extra) | set(self.held_out) & set(self.extra)
        if dup:
            raise ConfigError(f"benchmarks: {sorted(dup)} listed in more than one group")
        known = recipe_registry.all_recipes(self.extra_recipes)
        if not self.methods:
            raise ConfigError("methods: at least one method is needed (in `methods` or a `sweep` grid)")
        for m, spec in self.methods.items():
            kind = spec.get("method", DEFAULT_METHOD)
            if kind not in METHODS:
                raise ConfigError(f"methods.{m}.method: unknown method {spec['method']!r}; allowed: {sorted(METHODS)}")
            allowed_keys = METHOD_KEYS | set(DEFAULT_HPARAMS) | method_keys(kind)
            unknown = set(spec) - allowed_keys
            if unknown:
                raise ConfigError(f"methods.{m}: unknown key(s) {sorted(unknown)}; allowed: "
                                  f"{sorted(allowed_keys)}")
            if "recipe" not in spec and kind not in RECIPE_OPTIONAL:
                raise ConfigError(f"methods.{m}.recipe: required for method {kind!r} (optional only for "
                                  f"{sorted(RECIPE_OPTIONAL)}); allowed: {sorted(known)}")
            if kind in RECIPE_OPTIONAL and spec.get("recipe", NO_RECIPE) == NO_RECIPE:
                pass
            elif spec.get("recipe") not in known:
                raise ConfigError(f"methods.{m}.recipe: unknown recipe {spec.get('recipe')!r}; allowed: {sorted(known)}")
            try:
                method_spec(kind, spec, where=f"methods.{m}")
            except ValueError as e:
                raise ConfigError(str(e)) from None
            self._check_stage_keys(spec.get("stages") or {}, f"methods.{m}.stages")
        self._check_recipes(known)
        self._check_stage_keys({k: v for k, v in self.stage_cfg.items() if k != "defaults"}, "stages")
        for where, hp in self._all_hparam_blocks():
            unknown = set(hp) - set(DEFAULT_HPARAMS)
            if unknown:
                raise ConfigError(f"{where}: unknown hyperparameter(s) {sorted(unknown)}; allowed: {sorted(DEFAULT_HPARAMS)}")
        self._check_deepspeed()

    @property
    def world_size(self) -> int:
        """Processes of a training job: one per GPU (resources.gpus), else resources.processes."""
        res = self.cfg.get("resources") or {}
        gpus = int(res.get("gpus", 0) or 0)
        return gpus if gpus >= 1 else int(res.get("processes", 1) or 1)

    def deepspeed_config(self):
        """The JSON of resources.deepspeed (lmmcl.train.dsconfig.resolve), None without one."""
        from .train import dsconfig

        try:
            return dsconfig.resolve((self.cfg.get("resources") or {}).get("deepspeed"))
        except dsconfig.DeepSpeedConfigError as e:
            raise ConfigError(str(e)) from None

    def _check_deepspeed(self):
        """resources.deepspeed against every stage it would train (batch keys, clipping,
        precision, optimizer/scheduler blocks, ZeRO-3 and the method): refused before any job."""
        from .train import dsconfig

        path = self.deepspeed_config()
        if path is None:
            return
        try:
            ds = dsconfig.load(path)
            for m in self.methods:
                for s in self.stages(m):
                    dsconfig.check(ds, self.hparams(m, s.task), world_size=self.world_size,
                                   method=self.method_kind(m), name=str(path),
                                   where=f"method {m!r}, stage {s.name} (its hyperparameters from stages/methods.{m}, "
                                         f"processes from resources)")
        except dsconfig.DeepSpeedConfigError as e:
            raise ConfigError(str(e)) from None

    def _check_launch(self):
        """`tracking` (lmmcl.train.tracking) and `resources.processes` vs `resources.gpus`."""
        from .train import tracking

        try:
            tracking.normalize(self.cfg.get("tracking"))
        except ValueError as e:
            raise ConfigError(str(e)) from None
        res = self.cfg.get("resources") or {}
        procs, gpus = int(res.get("processes", 1) or 1), int(res.get("gpus", 0) or 0)
        if procs > 1 and gpus >= 1:
            raise ConfigError(f"resources.processes: {procs} with resources.gpus: {gpus}; with GPUs one process per GPU "
                              f"is launched, so processes must be 1 (allowed: processes > 1 only with gpus: 0, on CPU)")
        if self.eval_in_training_job and (procs > 1 or gpus > 1 or res.get("deepspeed")):
            launch = (f"resources.gpus: {gpus}" if gpus > 1 else f"resources.processes: {procs}" if procs > 1
                      else f"resources.deepspeed: {res.get('deepspeed')}")
            raise ConfigError(f"evaluation.in_training_job: true needs a single-process training job, but {launch} "
                              f"launches several; set evaluation.in_training_job: false (one evaluation job per "
                              f"stage) or train with one process (gpus <= 1, processes 1, no deepspeed)")

    @property
    def eval_in_training_job(self) -> bool:
        """evaluation.in_training_job: each stage's evaluation runs in its training job's process,
        right after the training (WiSE-FT's merged stages keep their own evaluation job)."""
        return bool((self.cfg.get("evaluation") or {}).get("in_training_job", False))

    def _check_model(self):
        """model.family is a family; a real family names model.checkpoint, and a local checkpoint
        folder (or another family's default hub id) must be a model of that family. No network:
        other hub ids are checked by the stage before it loads them (lmmcl.train.preflight)."""
        from pathlib import Path

        from .models.families import FAMILIES, get_family
        from .train.preflight import check_family

        model = self.cfg.get("model")
        if model is None:  # required by the schema; a bare Plan (tests) may leave it out
            return
        try:
            fam = get_family(model.get("family"))
        except ValueError as e:
            raise ConfigError(f"model.family: {e}") from None
        ckpt = model.get("checkpoint")
        if fam.default_checkpoint is None:  # tiny_llava: built from model.tiny, or a shipped base
            if ckpt:
                self._check_shipped_base(ckpt, model)
            return
        if not ckpt:
            raise ConfigError(f"model.checkpoint: required for family {fam.name!r}; allowed: a hub id "
                              f"('owner/name', e.g. {fam.default_checkpoint!r}) or a local checkpoint folder")
        local = Path(ckpt).expanduser()
        if local.exists() or ckpt.startswith((".", "/", "~")) or ckpt.count("/") != 1:
            if not (local / "config.json").is_file():
                raise ConfigError(f"model.checkpoint: {ckpt!r} is not a checkpoint folder (no {local / 'config.json'}); "
                                  f"allowed: a local folder with config.json or a hub id 'owner/name'")
            model_type = json.loads((local / "config.json").read_text()).get("model_type")
        else:
            model_type = next((f.model_type for f in FAMILIES.values() if f.default_checkpoint == ckpt), None)
        try:
            check_family(fam.name, ckpt, where="model.checkpoint", model_type=model_type, family_key="model.family")
        except ValueError as e:
            raise ConfigError(str(e)) from None

    @staticmethod
    def _check_shipped_base(ckpt: str, model: dict) -> None:
        """A tiny model.checkpoint is a tiny save_pretrained folder whose shape is model.tiny (a
        changed shape needs its own pre-training: checkpoint null)."""
        from .models import shipped
        from .models.tiny import TinySpec

        try:
            folder = shipped.resolve(ckpt)
        except FileNotFoundError as e:
            raise ConfigError(str(e)) from None
        built = shipped.tiny_spec(folder)
        if built is None:
            raise ConfigError(f"model.checkpoint: {ckpt!r} ({folder}) is not a tiny_llava checkpoint (its config.json "
                              f"has no lmmcl_tiny_spec); allowed: a base written by lmmcl build-base, or null")
        try:
            wanted = TinySpec.from_dict(model.get("tiny")).__dict__
        except ValueError as e:
            raise ConfigError(str(e)) from None
        diff = sorted(k for k in wanted if wanted[k] != built.get(k))
        if diff:
            raise ConfigError(
                f"model.tiny differs from the shipped base {folder} in {', '.join(f'{k}: {wanted[k]!r} (base: {built.get(k)!r})' for k in diff)}; "
                f"a base of another shape needs its own pre-training: set model.checkpoint: null (model.base_training)")

    def _trainable_tasks(self) -> list[str]:
        return sorted(n for n, s in registry.datasets().items() if "train" in (s.get("splits") or []))

    def _check_datasets(self):
        """Every sequence task is a dataset with a train split (lmmcl.registry.datasets), and
        `data.sources` only configures datasets that have a converter."""
        from .data.sources import reject_secret_options

        reg = registry.datasets()
        trainable = self._trainable_tasks()
        for t in self.sequence:
            if t not in trainable:
                raise ConfigError(f"sequence: task {t!r} is not a dataset with a train split "
                                  f"(registry/datasets.yaml); allowed: {trainable}")
        for t in self._base_training_cfg().get("skills") or []:
            if t not in trainable:
                raise ConfigError(f"model.base_training.skills: {t!r} is not a dataset with a train split "
                                  f"(registry/datasets.yaml); allowed: {trainable}")
        from .data.skills import PRIOR_TOKENIZERS

        tokenizer = ((self.cfg.get("model") or {}).get("tiny") or {}).get("tokenizer", "word")
        for prefix, kinds in PRIOR_TOKENIZERS.items():  # the research priors' words: only in their tokenizers'
            prior = sorted(t for t in self._base_training_cfg().get("skills") or [] if t.startswith(prefix))
            if prior and tokenizer not in kinds:  # their words would all be <unk>
                raise ConfigError(f"model.base_training.skills: {prior} need model.tiny.tokenizer: {kinds[0]} "
                                  f"(or {' or '.join(kinds[1:])}), got {tokenizer!r}: its vocabulary leaves them out")
        synthetic = sorted(n for n, s in reg.items() if s.get("source") == "synthetic")
        for t in (((self.cfg.get("data") or {}).get("synthetic") or {}).get("train_sizes") or {}):
            if t not in synthetic:
                raise ConfigError(f"data.synthetic.train_sizes: {t!r} is not a synthetic skill; allowed: {synthetic}")
        convertible = sorted(n for n, s in reg.items() if s.get("converter"))
        for name, opts in ((self.cfg.get("data") or {}).get("sources") or {}).items():
            if name not in convertible:
                raise ConfigError(f"data.sources: unknown dataset {name!r}; allowed: {convertible}")
            try:  # credentials come from the environment only
                reject_secret_options(name, opts or {})
            except ValueError as e:
                raise ConfigError(str(e)) from None

    # ---- the config's own skills (lmmcl.data.declared, docs/own_skill.md) -------------------
    def _declare_skills(self) -> dict:
        """Parse `skills:` and make them the declared skills of this process (replacing any earlier
        Plan's), so that the registries list them: {name: checked declaration}."""
        from .data import declared, skills

        entries = self.cfg.get("skills") or {}
        if not isinstance(entries, dict):
            raise ConfigError(f"skills: expected a mapping {{name: skill}}, got {entries!r} (docs/own_skill.md)")
        skills.declare({})
        taken = set(registry.datasets()) | set(registry.benchmarks())
        data = self.cfg.get("data") or {}
        words = self.skill_words() if entries else None
        parsed = {}
        for name, entry in entries.items():
            if name in taken:
                raise ConfigError(f"skills.{name}: {name!r} is already a dataset or benchmark of the registry; "
                                  f"pick another name")
            try:
                parsed[name] = declared.parse(name, entry, data_seed=int(data.get("seed", 0) or 0),
                                              data_limit=data.get("limit"), words=words)
            except declared.SkillError as e:
                raise ConfigError(str(e)) from None
        skills.declare({n: declared.skill_spec(d) for n, d in parsed.items()})
        return parsed

    def skill_words(self) -> dict | None:
        """Where the tiny family's word vocabulary is (a declared skill's words must be in it): the
        tokenizer.json of a shipped base, else the tokenizer kind of model.tiny; None for a real
        family or the byte tokenizer (they read any text)."""
        model = self.cfg.get("model") or {}
        if model.get("family") != "tiny_llava":
            return None
        if model.get("checkpoint"):
            from .models import shipped

            try:
                tok = shipped.resolve(model["checkpoint"]) / "tokenizer.json"
            except FileNotFoundError as e:
                raise ConfigError(str(e)) from None
            return {"tokenizer": str(tok)} if tok.is_file() else None
        kind = (model.get("tiny") or {}).get("tokenizer", "word")
        return None if kind == "byte" else {"tiny_tokenizer": kind}

    def _check_skills(self):
        """A declared skill trained on has a train split, one evaluated a test split; its local rows
        are read (texts, ids, image files, answers against the scorer, the tiny tokenizer's words);
        a hub or local Hugging Face dataset's rows are checked by its conversion."""
        from .data import declared

        used_train = set(self.sequence) | set(self._base_training_cfg().get("skills") or [])
        for name, decl in self.skills.items():
            if name in used_train and "train" not in decl["outputs"]:
                raise ConfigError(f"skills.{name}: trained on (sequence or model.base_training.skills) but has no "
                                  f"train split (its splits: {decl['outputs']}); give `path` rows and a "
                                  f"test_fraction below 1, or a test_path")
            if name in self.benchmarks and "test" not in decl["outputs"]:
                raise ConfigError(f"skills.{name}: evaluated (benchmarks) but has no test split (test_fraction: 0); "
                                  f"give a test_fraction above 0 or a test_path")
            if decl["format"] != "hf":
                try:
                    declared.read(decl, images="exists")
                except declared.SkillError as e:
                    raise ConfigError(str(e)) from None

    def _check_scorers(self):
        """Every evaluated benchmark of ours names a scorer lmmcl.evaluation.scoring has, with
        options it takes (found today only when its evaluation runs, after the training)."""
        from .evaluation import scoring
        from .evaluation.taskgen import scorer_of

        reg = registry.benchmarks()
        for group, names in (("target", self.target), ("held_out", self.held_out), ("extra", self.extra)):
            for b in names:
                spec = reg[b]
                if spec.get("builtin"):
                    continue
                where = "config skills" if spec.get("declared") else "registry/benchmarks.yaml"
                scorer = scorer_of(spec, bool((self.cfg.get("evaluation") or {}).get("clock_exact_hours")))
                try:
                    scoring.check_options(scorer, spec.get("scorer_options"))
                except ValueError as e:
                    raise ConfigError(f"benchmarks.{group}: benchmark {b!r} ({where}): {e}") from None

    def _check_recipes(self, known: dict):
        """Each method's recipe names only roles its family has (regexes, no model), and a recipe of
        the config's own (`recipes:`) selects parameters of the family's model, built on the meta
        device (no weights) only when a method uses one, so that planning stays fast."""
        model = self.cfg.get("model")
        if model is None:
            return
        from .models.families import get_family

        fam = get_family(model.get("family"))
        names = None
        for m in self.methods:
            r = self.recipe(m)
            if r == NO_RECIPE:
                continue
            spec = known[r]
            try:
                recipe_registry.resolve_patterns(list(spec.get("include") or []) + list(spec.get("exclude") or []), fam)
            except ValueError as e:
                raise ConfigError(f"methods.{m}.recipe: recipe {r!r}: {e}") from None
            if r not in self.extra_recipes:  # the built-ins: checked on every family by tests/test_families.py
                continue
            if names is None:
                names = self._meta_parameter_names(fam.name)
            try:
                chosen = recipe_registry.select(names, spec, fam)
            except ValueError as e:
                raise ConfigError(f"methods.{m}.recipe: recipe {r!r}: {e}") from None
            if not chosen:
                raise ConfigError(
                    f"methods.{m}.recipe: recipe {r!r} (recipes.{r}: include {spec.get('include', [])}"
                    + (f", exclude {spec['exclude']}" if spec.get("exclude") else "")
                    + f") matches no parameter of family {fam.name} ({len(names)} parameters on the meta device, "
                    f"e.g. {names[len(names) // 2]!r}); `lmmcl families --check {fam.name}` and `lmmcl recipes --table` "
                    f"show the names")

    def _meta_parameter_names(self, family: str) -> list[str]:
        """The family's parameter names on the meta device (the tiny family at model.tiny's sizes)."""
        import torch

        if family == "tiny_llava":
            from .models.tiny import TinySpec, build_tiny_llava

            with torch.device("meta"):
                model, _ = build_tiny_llava(TinySpec.from_dict((self.cfg.get("model") or {}).get("tiny")))
        else:
            from .models.meta import build_meta

            model = build_meta(family)
        return [n for n, _ in model.named_parameters()]

    def _check_revisions(self):
        """`evaluation.revisions` pins only built-in lmms-eval benchmarks (ours read local parquet,
        whose sha256 the evaluation records; their source is pinned by data.sources.<dataset>.revision)."""
        revisions = (self.cfg.get("evaluation") or {}).get("revisions") or {}
        reg = registry.benchmarks()
        builtin = sorted(b for b, s in reg.items() if s.get("builtin"))
        if not isinstance(revisions, dict):
            raise ConfigError(f"evaluation.revisions: expected a mapping {{benchmark: revision}}, got {revisions!r}; "
                              f"allowed benchmarks: {builtin}")
        for b, rev in revisions.items():
            if b not in reg:
                raise ConfigError(f"evaluation.revisions: unknown benchmark {b!r}; allowed: the built-in lmms-eval "
                                  f"benchmarks {builtin}")
            if b not in builtin:
                raise ConfigError(f"evaluation.revisions.{b}: {b!r} is not a built-in lmms-eval benchmark (it reads "
                                  f"local parquet, whose sha256 every evaluation records; pin its source with "
                                  f"data.sources.<dataset>.revision); allowed: {builtin}")
            if rev is not None and not (isinstance(rev, str) and REVISION_RE.match(rev)):
                raise ConfigError(f"evaluation.revisions.{b}: {rev!r} is not a hub revision; allowed: a commit sha "
                                  f"(best), tag or branch of letters, digits and . _ / - (quote an all-digit one)")

    def _check_stage_keys(self, overrides: dict, where: str):
        for task in overrides:
            if task not in self.sequence:
                raise ConfigError(f"{where}: {task!r} is not a task of the sequence {self.sequence}")

    def _all_hparam_blocks(self):
        yield "stages.defaults", self.stage_cfg.get("defaults") or {}
        for t, hp in self.stage_cfg.items():
            if t != "defaults":
                yield f"stages.{t}", hp or {}
        for m, spec in self.methods.items():
            for t, hp in (spec.get("stages") or {}).items():
                yield f"methods.{m}.stages.{t}", hp or {}

    # ---- derived values --------------------------------------------------------------------
    @property
    def benchmarks(self) -> list[str]:
        return self.target + self.held_out + self.extra

    @property
    def local_benchmarks(self) -> list[str]:
        """Benchmarks that read local parquet (not lmms-eval built-ins, which load their own data)."""
        reg = registry.benchmarks()
        return [b for b in self.benchmarks if not reg[b].get("builtin")]

    @property
    def dataset_revisions(self) -> dict[str, str]:
        """{built-in benchmark: pinned hub dataset revision} of the evaluated benchmarks
        (`evaluation.revisions`, null entries and benchmarks not evaluated left out), in benchmark order."""
        revisions = (self.cfg.get("evaluation") or {}).get("revisions") or {}
        return {b: revisions[b] for b in self.benchmarks if revisions.get(b)}

    def _base_training_cfg(self) -> dict:
        return (self.cfg.get("model") or {}).get("base_training") or {}

    @property
    def base_training(self) -> dict:
        """The tiny base's pre-training: {"skills": model.base_training.skills, else the held-out
        benchmarks; "hparams": model.base_training.hparams (the rest: lmmcl.train.hparams)}."""
        bt = self._base_training_cfg()
        return {"skills": list(bt.get("skills") or self.held_out), "hparams": dict(bt.get("hparams") or {})}

    def synthetic_size(self, skill: str, split: str) -> int:
        """Examples of a synthetic split: data.synthetic.train_sizes[skill], else train_size (train)
        or test_size (test); reads a schema-validated config (its defaults filled in)."""
        syn = self.cfg["data"]["synthetic"]
        return syn["train_sizes"].get(skill, syn["train_size"]) if split == "train" else syn["test_size"]

    # ---- analysis probes (config `probes`, rules/probes.smk) ----------------------------------
    @property
    def probe_seed(self) -> int:
        """The run whose checkpoints are probed: probes.seed, else the first run seed."""
        seed = (self.cfg.get("probes") or {}).get("seed", self.seeds[0])
        if seed not in self.seeds:
            raise ConfigError(f"probes.seed: {seed!r} is not one of the run seeds {self.seeds}")
        return seed

    def probe_dataset(self, key: str) -> str:
        """Dataset (test split) of a probe's prompts: probes.<key>, else for `target_data` the
        sequence's counting task (else its first), for `layer_data` the `held_out_data`, for
        `held_out_data` the first held-out benchmark."""
        name = (self.cfg.get("probes") or {}).get(key)
        if name:
            return name
        if key == "target_data":
            counting = [t for t in self.sequence if "count" in t]
            return counting[0] if counting else self.sequence[0]
        if key == "layer_data":
            return self.probe_dataset("held_out_data")
        if not self.held_out:
            raise ConfigError("probes.held_out_data is needed (no held-out benchmark to default to)")
        return self.held_out[0]

    def probe_stages(self) -> list[Stage]:
        """The checkpoints probed: probes.methods x probes.stages (tasks of the sequence; null = all)."""
        probes = self.cfg.get("probes") or {}
        methods = probes.get("methods") or list(self.methods)
        tasks = probes.get("stages") or list(self.sequence)
        for m in methods:
            if m not in self.methods:
                raise ConfigError(f"probes.methods: unknown method {m!r}; configured: {sorted(self.methods)}")
        for t in tasks:
            if t not in self.sequence:
                raise ConfigError(f"probes.stages: {t!r} is not a task of the sequence {self.sequence}")
        return [s for m in methods for s in self.stages(m) if s.task in tasks]

    def stages(self, method: str) -> list[Stage]:
        return [Stage(method, k, t) for k, t in enumerate(self.sequence, start=1)]

    def stage(self, method: str, k: int, task: str) -> Stage:
        if method not in self.methods:
            raise ConfigError(f"unknown method {method!r}; configured: {sorted(self.methods)}")
        if not 1 <= k <= len(self.sequence) or self.sequence[k - 1] != task:
            raise ConfigError(f"stage{k}_{task} is not in the sequence {self.sequence}")
        return Stage(method, k, task)

    def hparams(self, method: str, task: str, seed: int | None = None) -> dict:
        """defaults < run seed < stages.defaults < method < stages[task] < methods[m].stages[task]
        (later wins): a stage trains with its run's seed unless the config fixes `seed` for it."""
        spec = self.methods[method]
        hp = {"seed": self.seeds[0] if seed is None else int(seed)}
        hp.update(self.stage_cfg.get("defaults") or {})
        hp.update({k: v for k, v in spec.items() if k in DEFAULT_HPARAMS})
        hp.update(self.stage_cfg.get(task) or {})
        hp.update((spec.get("stages") or {}).get(task) or {})
        return complete(hp)

    def recipe(self, method: str) -> str:
        """The method's recipe; `none` for a LoRA/MoE method without one (its hook decides)."""
        return self.methods[method].get("recipe", NO_RECIPE)

    def method_kind(self, method: str) -> str:
        return self.methods[method].get("method", DEFAULT_METHOD)

    def method_spec(self, method: str) -> dict:
        """`{"method": kind, **the kind's keys with defaults}` (lmmcl.train.methods)."""
        return method_spec(self.method_kind(method), self.methods[method], where=f"methods.{method}")

    def report_plan(self) -> dict:
        reg = registry.benchmarks()
        from .sweep import grid_points

        return {
            "experiment": self.experiment,
            "seeds": self.seeds,
            "methods": list(self.methods),
            "sweep": grid_points(self.cfg.get("sweep")),
            "lr_rule": (self.cfg.get("sweep") or {}).get("lr_rule"),
            "sequence": self.sequence,
            "stage_targets": {t: registry.benchmark_of_task(t) for t in self.sequence},
            "target": self.target,
            "held_out": self.held_out,
            "extra": self.extra,
            "chance": {b: reg[b].get("chance") for b in self.benchmarks},
            # bootstrap resamples of the 95 % intervals (lmmcl.report.intervals; 0 = none)
            "intervals": {"resamples": int((self.cfg.get("intervals") or {}).get("resamples", DEFAULT_RESAMPLES))},
            **self._paper_reference(),
        }

    def _paper_reference(self) -> dict:
        """With `compare_to_paper`: the study's headline numbers of every plain-SFT method whose
        recipe the abstract reports (registry paper_headline.yaml), for the tables and the summary.
        Absent otherwise, so that the aggregate's params of other experiments stay the same."""
        if not self.cfg.get("compare_to_paper"):
            return {}
        head = registry.paper_headline()
        paper = {m: dict(head["recipes"][self.recipe(m)]) for m in self.methods
                 if self.method_kind(m) == DEFAULT_METHOD and self.recipe(m) in head["recipes"]}
        return {"paper": paper, "paper_source": head["source"]}


def dumps(obj) -> str:
    """Stable JSON for rule params (the params rerun trigger compares these strings)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def coerce_cli_values(cfg, schema: dict):
    """Snakemake's `--config key=value` reads a nested value's scalars as strings (YAML's
    BaseLoader: `seeds=[0,1,2]` gives ['0', '1', '2']). Turn such strings back into the integer,
    number or boolean the schema asks for, in place; anything else is left to the schema's errors."""
    defs = schema.get("$defs", {})

    def resolve(node):
        while isinstance(node, dict) and "$ref" in node:
            node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
        return node or {}

    def convert(value, node):
        node = resolve(node)
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        if isinstance(value, str):
            text = value.strip()
            if "integer" in types and re.fullmatch(r"[+-]?\d+", text):
                return int(text)
            if "number" in types:
                try:
                    return float(text)
                except ValueError:
                    return value
            if "boolean" in types and text.lower() in ("true", "false"):
                return text.lower() == "true"
            return value
        if isinstance(value, list):
            return [convert(v, node.get("items", {})) for v in value]
        if isinstance(value, dict):
            props, extra = node.get("properties", {}), node.get("additionalProperties", {})
            for k, v in value.items():
                value[k] = convert(v, props.get(k, extra if isinstance(extra, dict) else {}))
        return value

    return convert(cfg, schema)


def load_configfiles(paths: list[str]) -> dict:
    """The config Snakemake would see for `--configfile PATHS...`: the files deep-merged in order
    (the Snakefile loads config/config.yaml only when no --configfile is given), the schema's
    defaults filled in."""
    import yaml

    cfg: dict = {}
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"--configfile {p!r}: no such file; allowed: an experiment config "
                                    f"YAML, e.g. config/paper_llava_onevision.yaml")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"--configfile {p!r}: holds a {type(data).__name__}, not a mapping of config keys")
        _merge(cfg, data)
    schema = Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml"
    if schema.is_file():  # the source tree (editable install); elsewhere Plan's checks only
        from snakemake.utils import validate

        try:
            validate(cfg, schema=str(schema))
        except Exception as e:  # snakemake's WorkflowError: a config the workflow would refuse
            raise ValueError(f"--configfile {' '.join(paths)}: {str(e).strip().splitlines()[0]}") from None
    return cfg


def _merge(base: dict, over: dict) -> None:
    """Deep-merge `over` into `base` as Snakemake merges config files."""
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
