"""The tiny builder of a family that has a YAML entry and no module of its own.

A native transformers class that follows a known layout needs no Python: its config class's
defaults, shrunk to a tiny model (`SHRINK`: every key a sub-config declares gets the tiny value; a
multimodal rope's `mrope_section` is rescaled to the tiny head), then the entry's `tiny.config`
overrides; a byte-level tokenizer holding the entry's special
tokens (`tiny.tokens`: `bos`/`eos`/`pad` and the attributes the processor reads, e.g.
`image_token`); every config field `<X>_token_id` / `<X>_token_index` set to the id of token
`<X>_token` when there is one; and the class's native processor (`AutoProcessor`'s for the
config) with the PIL image processor of the model type, made image-only
(`lmmcl.models.processors.image_only`) when it wants a video processor. The chat template is the
entry's `tiny.chat_template`, else ChatML closing each turn with the end-of-turn token (`eos`)
and `tiny.image_placeholder` (default: the image token) where the image goes. The real checkpoint
brings its own template in its processor.

The `tiny` keys (all optional):

    tiny:
      tokens: {eos: '<|im_end|>', pad: '<|endoftext|>', image_token: '<image>'}
      image_placeholder: '<|vision_start|><|image_pad|><|vision_end|>'
      chat_template: null         # Jinja; null: ChatML with the image placeholder
      config: {text_config: {...}, vision_config: {...}, <top-level key>: ...}
      image_processor: {...}      # keyword arguments of the PIL image processor
      processor: {...}            # keyword arguments of the processor (e.g. image_seq_length)

Imports of transformers stay inside the functions: the planning environment reads the families
without it.
"""
from __future__ import annotations

from .tiny_parts import seeded_model

# sub-config key -> tiny value; a key is set where the sub-config class declares it
SHRINK = {
    "hidden_size": 64, "embed_dim": 64, "out_hidden_size": 64, "projection_dim": 64,
    "intermediate_size": 128, "num_hidden_layers": 2, "depth": 2,
    "num_attention_heads": 4, "num_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "max_position_embeddings": 1024, "image_size": 32, "patch_size": 8,
}
DEFAULT_TOKENS = {"eos": "<|im_end|>", "pad": "<|endoftext|>", "image_token": "<image>"}

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}{{ image_placeholder }}"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ end_of_turn + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def chat_template(tiny: dict, tokens: dict) -> str:
    if tiny.get("chat_template"):
        return tiny["chat_template"]
    placeholder = tiny.get("image_placeholder") or tokens["image_token"]
    return CHATML.replace("{{ image_placeholder }}", placeholder).replace(
        "{{ end_of_turn + '\\n' }}", tokens["eos"] + "{{ '\\n' }}")


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _fields(config) -> set:
    import dataclasses

    return {f.name for f in dataclasses.fields(config)} if dataclasses.is_dataclass(config) else set(vars(config))


def tiny_config(model_class, overrides: dict | None = None, vocab_size: int | None = None):
    """The config class of `model_class` (a transformers class) with every sub-config shrunk
    (SHRINK), the text config's vocabulary `vocab_size`, then `overrides` merged in."""
    config_class = model_class.config_class
    default = config_class()
    kwargs = {}
    for name in getattr(config_class, "sub_configs", {}) or {}:
        sub = getattr(default, name, None)
        if sub is None:
            continue
        fields = _fields(sub)
        d = {"model_type": sub.model_type, **{k: v for k, v in SHRINK.items() if k in fields}}
        if name == "text_config":
            d["tie_word_embeddings"] = False
            if vocab_size and "vocab_size" in fields:
                d["vocab_size"] = vocab_size
        if "mrope_section" in getattr(type(sub), "ignore_keys_at_rope_validation", ()):
            # a multimodal rope (Qwen-VL): its t/h/w sections sum to half the tiny head
            h = SHRINK["head_dim"]
            d["rope_parameters"] = {**(getattr(sub, "rope_parameters", None) or {}),
                                    "mrope_section": [h // 8, 3 * h // 16, 3 * h // 16]}
        kwargs[name] = d
    kwargs = _merge(kwargs, overrides or {})
    if "tie_word_embeddings" in _fields(default):
        kwargs.setdefault("tie_word_embeddings", False)
    return config_class(**kwargs)


def _set_token_ids(config, tok, tokens: dict) -> None:
    """`<X>_token_id` / `<X>_token_index` of the config (and its sub-configs) = id of `<X>_token`."""
    import re

    configs = [config] + [getattr(config, n) for n in getattr(type(config), "sub_configs", {}) or {}
                          if getattr(config, n, None) is not None]
    for cfg in configs:
        for field in _fields(cfg):
            m = re.fullmatch(r"(\w+_token)_(id|index)", field)
            if m and m.group(1) in tokens:
                setattr(cfg, field, tok.convert_tokens_to_ids(tokens[m.group(1)]))


def build_tiny(family, seed: int = 0):
    """(model, processor): a randomly initialised tiny model of `family`'s class, from YAML alone."""
    import transformers
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from .. import processors
    from ..tiny import build_byte_tokenizer
    from .tiny_parts import token_ids

    tiny = dict(family.tiny or {})
    tokens = {**DEFAULT_TOKENS, **({"eos": family.end_of_turn} if family.end_of_turn else {}), **tiny.get("tokens", {})}
    roles = {"bos", "eos", "pad", "unk"}
    extra = {k: v for k, v in tokens.items() if k not in roles}
    specials = list(dict.fromkeys([*tokens.values(), *([] if tiny.get("chat_template") else ["<|im_start|>"])]))
    template = chat_template(tiny, tokens)
    tok = build_byte_tokenizer(specials, bos=tokens.get("bos"), eos=tokens["eos"], pad=tokens["pad"],
                               unk=tokens.get("unk"), extra_special_tokens=extra, added=specials,
                               chat_template=template)
    model_class = getattr(transformers, family.model_class)
    config_class = model_class.config_class
    native = PROCESSOR_MAPPING[config_class]
    processor_class = processors.register_image_only(config_class) if processors.takes_video_processor(native) \
        else native
    image_processor_class = IMAGE_PROCESSOR_MAPPING[config_class]["pil"]
    image_processor = image_processor_class(**tiny.get("image_processor", {}))
    processor = processor_class(image_processor=image_processor, tokenizer=tok, chat_template=template,
                                **tiny.get("processor", {}))
    ids = token_ids(tok, bos=bool(tokens.get("bos")))
    config = tiny_config(model_class, _merge({"text_config": ids}, tiny.get("config", {})), vocab_size=len(tok))
    _set_token_ids(config, tok, extra)
    return seeded_model(model_class, config, seed, ids), processor
