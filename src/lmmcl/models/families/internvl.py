"""`internvl`: InternVLForConditionalGeneration (InternViT + Qwen2.5 LLM), the transformers-native
("-hf") InternVL checkpoints.

Default checkpoint OpenGVLab/InternVL3-8B-hf (InternViT-300M-448px-V2.5 + Qwen2.5-7B). The layout
is LLaVA's (transformers `models/internvl/modeling_internvl.py`): `model.vision_tower` (its own
`attention.q_proj/k_proj/v_proj`, so a substring `q_proj` recipe would reach it),
`model.multi_modal_projector` (layer norm + two linears after the pixel shuffle) and
`model.language_model`; no image newline. Roles: registry/families.yaml.
"""
from .tiny_parts import seeded_model, text_sizes, token_ids

# The chat template of the InternVL3 -hf checkpoints: ChatML, an image as `<IMG_CONTEXT>\n` before
# the text (InternVLProcessor expands it to <img> + image_seq_length x <IMG_CONTEXT> per tile + </img>)
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n'}}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<IMG_CONTEXT>\\n' }}"
    "{% elif content['type'] == 'video' %}{{ '<video>\\n' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}{{'<|im_end|>\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{'<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised InternVLForConditionalGeneration with a Qwen2
    LLM; `GotOcr2ImageProcessorPil` (InternVL's image processor, PIL backend) tiles an image into
    at most 2 crops of 32 px plus a thumbnail, each (32/8)^2 x 0.5^2 = 4 image tokens."""
    from transformers import InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config
    from transformers.models.got_ocr2.image_processing_pil_got_ocr2 import GotOcr2ImageProcessorPil

    from ..processors import InternVLImageOnlyProcessor
    from ..tiny import build_byte_tokenizer

    tok = build_byte_tokenizer(
        SPECIALS, bos=None, eos="<|im_end|>", pad="<|endoftext|>", unk=None,
        extra_special_tokens={"start_image_token": "<img>", "end_image_token": "</img>",
                              "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"},
        added=SPECIALS, chat_template=CHAT_TEMPLATE,
    )
    downsample = 0.5
    seq = int((image_size // patch_size) ** 2 * downsample ** 2)
    image_processor = GotOcr2ImageProcessorPil(size={"height": image_size, "width": image_size},
                                               crop_to_patches=True, min_patches=1, max_patches=2)
    processor = InternVLImageOnlyProcessor(image_processor=image_processor, tokenizer=tok, image_seq_length=seq,
                                           chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok, bos=False)
    text = Qwen2Config(vocab_size=len(tok), **text_sizes(hidden, layers), **ids)
    vision = InternVLVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=image_size, patch_size=patch_size)
    config = InternVLConfig(vision_config=vision, text_config=text, image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"),
                            image_seq_length=seq, downsample_ratio=downsample, tie_word_embeddings=False)
    return seeded_model(InternVLForConditionalGeneration, config, seed, ids), processor
