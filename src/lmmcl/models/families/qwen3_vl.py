"""`qwen3_vl`: Qwen3VLForConditionalGeneration (Qwen3-VL ViT + Qwen3-8B LLM).

Default checkpoint Qwen/Qwen3-VL-8B-Instruct. As in Qwen2.5-VL the projector lives inside
`model.visual`, and Qwen3-VL has two kinds of it (transformers `models/qwen3_vl/modeling_qwen3_vl.py`,
`Qwen3VLVisionModel`): `merger`, the patch merger after the last block, and `deepstack_merger_list`,
one merger per `deepstack_visual_indexes` block whose output is added to the first LLM layers'
hidden states (DeepStack). Both are the projector; the blocks (fused `attn.qkv`, `attn.proj`,
`mlp.linear_fc1/2`) are the vision tower. The LLM is Qwen3 (q/k norms, no q/k/v biases). No image
newline. Roles: registry/families.yaml.
"""
from .qwen2_5_vl import mrope_section, tiny_tokenizer_and_image_processor  # the same tokens and image processor
from .tiny_parts import seeded_model, text_sizes, token_ids

# The user/assistant path of Qwen/Qwen3-VL-8B-Instruct's chat_template.json (its tool-call and
# tool-response branches left out): ChatML, no default system message (unlike Qwen2.5-VL), an image
# as <|vision_start|><|image_pad|><|vision_end|> where it occurs in the content.
CHAT_TEMPLATE = (
    "{%- if messages[0].role == 'system' %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].content is string %}{{- messages[0].content }}"
    "{%- else %}{%- for content in messages[0].content %}{%- if 'text' in content %}{{- content.text }}{%- endif %}"
    "{%- endfor %}{%- endif %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- set image_count = namespace(value=0) %}{%- set video_count = namespace(value=0) %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content is string %}{{- message.content }}{%- else %}{%- for content in message.content %}"
    "{%- if content.type == 'image' or 'image' in content or 'image_url' in content %}"
    "{%- set image_count.value = image_count.value + 1 %}{%- if add_vision_id %}Picture {{ image_count.value }}: {% endif -%}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif content.type == 'video' or 'video' in content %}"
    "{%- set video_count.value = video_count.value + 1 %}{%- if add_vision_id %}Video {{ video_count.value }}: {% endif -%}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif 'text' in content %}{{- content.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role + '\\n' }}"
    "{%- if message.content is string %}{{- message.content }}{%- else %}{%- for content_item in message.content %}"
    "{%- if 'text' in content_item %}{{- content_item.text }}{%- endif %}{%- endfor %}{%- endif %}"
    "{{- '<|im_end|>\\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def build_tiny(seed: int = 0, image_size: int = 32, patch_size: int = 8, hidden: int = 64, layers: int = 2):
    """(model, processor): a randomly initialised Qwen3VLForConditionalGeneration with one
    DeepStack merger (vision block 0), `Qwen2VLImageProcessorPil` pinned so a 32 px image stays
    32 px (Qwen3-VL's processor uses Qwen2-VL's image processor, with 16 px patches in the real one)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from ..processors import Qwen3VLImageOnlyProcessor

    merge = 2
    tok, image_processor = tiny_tokenizer_and_image_processor(CHAT_TEMPLATE, image_size, patch_size, merge)
    processor = Qwen3VLImageOnlyProcessor(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE)
    ids = token_ids(tok, bos=False)
    head_dim = hidden // 4
    text = dict(vocab_size=len(tok), **text_sizes(hidden, layers), head_dim=head_dim, **ids,
                rope_scaling={"rope_type": "default", "mrope_interleaved": True,
                              "mrope_section": mrope_section(head_dim)})
    grid = 2 * image_size // patch_size  # learned position grid (bilinearly interpolated): 8 x 8
    vision = dict(depth=2, hidden_size=hidden, intermediate_size=2 * hidden, num_heads=4, out_hidden_size=hidden,
                  patch_size=patch_size, spatial_merge_size=merge, temporal_patch_size=2,
                  num_position_embeddings=grid * grid, deepstack_visual_indexes=[0])
    config = Qwen3VLConfig(
        text_config=text, vision_config=vision, image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"), tie_word_embeddings=False, **ids)
    return seeded_model(Qwen3VLForConditionalGeneration, config, seed, ids), processor
