"""Image-only processor shims for environments without torchvision.

`LlavaOnevisionProcessor` and `Qwen2_5_VLProcessor` insist on a video processor, and their
video processors need torchvision. These subclasses take no `video_processor` (ProcessorMixin
reads a processor's parts from its `__init__` signature) and are registered with
`AutoProcessor`, so a checkpoint saved with one reloads with `AutoProcessor.from_pretrained` —
in any process that imported this module first (`lmmcl.models.io.load_model` does). Without the
import AutoProcessor silently returns just the tokenizer (transformers 5: the processors'
`video_processor` attribute, `models/llava_onevision/processing_llava_onevision.py` and
`models/qwen2_5_vl/processing_qwen2_5_vl.py`).
"""
from __future__ import annotations

from transformers import AutoProcessor, LlavaOnevisionConfig, Qwen2_5_VLConfig
from transformers.models.llava_onevision.processing_llava_onevision import LlavaOnevisionProcessor
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
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


AutoProcessor.register(LlavaOnevisionConfig, LlavaOnevisionImageOnlyProcessor, exist_ok=True)
AutoProcessor.register(Qwen2_5_VLConfig, Qwen2_5_VLImageOnlyProcessor, exist_ok=True)
