"""Entry point `lmms_eval.models: lmmcl = lmmcl.evaluation.manifest:MANIFEST` (pyproject.toml).

`MANIFEST` is a `lmms_eval.models.registry_v2.ModelManifest` naming our chat class
`lmmcl.evaluation.model.LmmclModel` (imported only when the model is requested).
lmms-eval 0.7.3 resolves `--model lmmcl` through the `lmms_eval.models` entry-point group
(`lmms_eval/models/__init__.py`, `registry_v2.py`); see docs/evaluation.md ("lmms-eval facts we
rely on").

It is built lazily (module `__getattr__`) so that importing this module does not import
lmms_eval: with an eager `from lmms_eval.models.registry_v2 import ModelManifest` at the top,
importing this module *before* lmms_eval makes `lmms_eval.models.__init__` load the entry point
while this module is half-initialised, and lmms-eval then silently drops the `lmmcl` model.
"""
from __future__ import annotations

MODEL_ID = "lmmcl"
CHAT_CLASS_PATH = "lmmcl.evaluation.model.LmmclModel"

_manifest = None


def __getattr__(name: str):
    global _manifest
    if name == "MANIFEST":
        if _manifest is None:
            from lmms_eval.models.registry_v2 import ModelManifest

            _manifest = ModelManifest(model_id=MODEL_ID, chat_class_path=CHAT_CLASS_PATH)
        return _manifest
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
