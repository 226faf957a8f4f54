"""Image-only processor shims for environments without torchvision.

Several native processors insist on a video processor, and their video processors need
torchvision: `LlavaOnevisionProcessor`, `Qwen2_5_VLProcessor`, `Qwen3VLProcessor`,
`InternVLProcessor`, `SmolVLMProcessor` (their `video_processor` attribute, e.g.
`models/qwen3_vl/processing_qwen3_vl.py` in transformers). These subclasses take no
`video_processor` (ProcessorMixin reads a processor's parts from its `__init__` signature) and are
registered with `AutoProcessor`, so a checkpoint saved with one reloads with
`AutoProcessor.from_pretrained` — in any process that imported this module first
(`lmmcl.models.io.load_model` does). Without the import AutoProcessor silently returns just the
tokenizer (transformers 5).

Families of the registry whose native processor takes a video processor and that have no shim
here (a family added by its YAML entry alone) get one made by `image_only` and registered when
this module is imported, so such a family needs no Python either.
"""
from __future__ import annotations

from transformers import (AutoProcessor, Gemma3Config, InternVLConfig, LlavaOnevisionConfig, Qwen2_5_VLConfig,
                          Qwen3VLConfig, SmolVLMConfig)
from transformers.models.gemma3.processing_gemma3 import Gemma3Processor
from transformers.models.internvl.processing_internvl import InternVLProcessor
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
from transformers.processing_utils import ProcessorMixin


class LlavaOnevisionImageOnlyProcessor(LlavaOnevisionProcessor):
    def __init__(self, image_processor=None, tokenizer=None, num_image_tokens=None,
                 vision_feature_select_strategy=None, chat_template=None, image_token="<image>",
                 video_token="<video>", vision_aspect_ratio="anyres_max_9", **kwargs):
        self.num_image_tokens = num_image_tokens
        self.vision_feature_select_strategy = vision_feature_select_strategy
        self.image_token = tokenizer.image_token if hasattr(tokenizer, "image_token") else image_token
        self.video_token = tokenizer.video_token if hasattr(tokenizer, "video_token") else video_token
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(self.video_token)
        self.vision_aspect_ratio = vision_aspect_ratio
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class Qwen2_5_VLImageOnlyProcessor(Qwen2_5_VLProcessor):
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
        self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


class FlatImages:
    """Mixin: a batch's images may come as one flat list, one image per placeholder in text order,
    as the collator (lmmcl.train.collate) and the evaluation wrapper pass them and LLaVA's and
    Qwen's processors take them. Gemma 3's and SmolVLM's processors want one list per text
    (`make_nested_list_of_images`); a flat list is nested here by counting each text's
    placeholders (`self.image_token`: Gemma 3's `<start_of_image>`, SmolVLM's `<image>`).

    Also: texts that already start with the tokenizer's BOS token (Gemma 3's chat template writes
    `{{ bos_token }}`) are tokenized without adding a second one, as `apply_chat_template(...,
    tokenize=True)` does; Gemma's tokenizer adds a BOS by default."""

    def __call__(self, images=None, text=None, *args, **kwargs):
        if (isinstance(text, (list, tuple)) and len(text) > 1 and isinstance(images, (list, tuple)) and images
                and not isinstance(images[0], (list, tuple))):
            counts = [t.count(self.image_token) for t in text]
            if sum(counts) == len(images):
                it = iter(images)
                images = [[next(it) for _ in range(c)] for c in counts]
        bos = getattr(self.tokenizer, "bos_token", None)
        texts = [text] if isinstance(text, str) else text
        if bos and texts and all(isinstance(t, str) and t.startswith(bos) for t in texts):
            kwargs.setdefault("add_special_tokens", False)
        return super().__call__(images, text, *args, **kwargs)


class Gemma3FlatImagesProcessor(FlatImages, Gemma3Processor):
    """Gemma3Processor taking a batch's images as one flat list (FlatImages)."""


class SmolVLMFlatImagesProcessor(FlatImages, SmolVLMProcessor):
    """SmolVLMProcessor taking a batch's images as one flat list (FlatImages)."""


# native class -> our subclass that only adds behaviour (no state): `lmmcl.models.io.load_processor`
# gives a loaded native processor this class, so a published checkpoint batches like ours
FLAT_IMAGES = {Gemma3Processor: Gemma3FlatImagesProcessor, SmolVLMProcessor: SmolVLMFlatImagesProcessor}


class SmolVLMImageOnlyProcessor(SmolVLMFlatImagesProcessor):
    """SmolVLMProcessor without a video processor and without `num2words` (its `__init__` requires
    that package, used only to write a video's frame count in words)."""

    def __init__(self, image_processor=None, tokenizer=None, image_seq_len: int = 169, chat_template=None, **kwargs):
        self.fake_image_token = getattr(tokenizer, "fake_image_token", "<fake_token_around_image>")
        self.image_token = getattr(tokenizer, "image_token", "<image>")
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.end_of_utterance_token = getattr(tokenizer, "end_of_utterance_token", "<end_of_utterance>")
        self.global_image_token = getattr(tokenizer, "global_image_token", "<global-img>")
        self.image_seq_len = image_seq_len
        self.video_token = getattr(tokenizer, "video_token", "<video>")
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def apply_chat_template(self, conversation, chat_template=None, **kwargs):
        # SmolVLMProcessor's reads the video processor's frame settings on every call
        return ProcessorMixin.apply_chat_template(self, conversation, chat_template, **kwargs)


def takes_video_processor(processor_class) -> bool:
    import inspect

    return "video_processor" in inspect.signature(processor_class.__init__).parameters


def image_only(processor_class):
    """A subclass of `processor_class` without its video processor: its `__init__` takes the
    native parameters but `video_processor` and runs the native `__init__` with
    `video_processor=None`; ProcessorMixin, which takes the parts the subclass's signature names,
    keeps the image processor and the tokenizer only. The `__init__` is compiled with those
    parameters because `ProcessorMixin.from_args_and_dict` reads the settings it passes back on
    reload (e.g. InternVL's `image_seq_length`) from `__init__.__code__`."""
    import inspect

    native = inspect.signature(processor_class.__init__).parameters
    params, call = [], ["self", "video_processor=None"]
    for name, p in native.items():
        if name in ("self", "video_processor") or p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            params.append(f"**{name}")
            call.append(f"**{name}")
        else:
            params.append(f"{name}=__defaults[{name!r}]")
            call.append(f"{name}={name}")
    defaults = {n: (None if p.default is p.empty else p.default) for n, p in native.items()}
    source = (f"def __init__(self, {', '.join(params)}):\n"
              f"    __native({', '.join(call)})\n")
    namespace = {"__defaults": defaults, "__native": processor_class.__init__}
    exec(source, namespace)  # noqa: S102  (built from the native signature above, no outside input)
    name = processor_class.__name__.replace("Processor", "") + "ImageOnlyProcessor"
    return type(name, (processor_class,), {"__init__": namespace["__init__"], "__module__": __name__,
                                           "__doc__": f"{processor_class.__name__} without a video processor."})


Qwen3VLImageOnlyProcessor = image_only(Qwen3VLProcessor)
InternVLImageOnlyProcessor = image_only(InternVLProcessor)
# config class -> the processor AutoProcessor gives a folder saved with it
REGISTERED = {LlavaOnevisionConfig: LlavaOnevisionImageOnlyProcessor, Qwen2_5_VLConfig: Qwen2_5_VLImageOnlyProcessor,
              Qwen3VLConfig: Qwen3VLImageOnlyProcessor, InternVLConfig: InternVLImageOnlyProcessor,
              SmolVLMConfig: SmolVLMImageOnlyProcessor, Gemma3Config: Gemma3FlatImagesProcessor}


def register_image_only(config_class):
    """The image-only processor AutoProcessor gives a folder of `config_class`'s model type:
    ours (REGISTERED) or one made by `image_only` from the native processor, registered once."""
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    if config_class not in REGISTERED:
        shim = image_only(PROCESSOR_MAPPING[config_class])
        globals()[shim.__name__] = shim  # a saved folder names it in processor_config.json
        REGISTERED[config_class] = shim
        AutoProcessor.register(config_class, shim, exist_ok=True)
    return REGISTERED[config_class]


def _register_family_shims() -> None:
    """An image-only processor for every registry family whose native processor takes a video
    processor and has none above (a family added by its YAML entry alone)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from .. import registry

    for spec in registry.families().values():
        config_class = CONFIG_MAPPING[spec["model_type"]]  # the config module only, not the modeling one
        try:
            native = PROCESSOR_MAPPING[config_class]
        except KeyError:
            continue
        if config_class not in REGISTERED and takes_video_processor(native):
            register_image_only(config_class)


for _config, _processor in REGISTERED.items():
    AutoProcessor.register(_config, _processor, exist_ok=True)
_register_family_shims()
