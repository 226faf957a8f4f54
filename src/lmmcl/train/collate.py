"""Batches for supervised fine-tuning with the loss on the answer tokens only.

The prompt is rendered with the checkpoint's own chat template (the processor's), so every
family trains on the same text layout it is evaluated with. The number of answer tokens is the
length difference between the tokenised full conversation and the tokenised prompt (image
placeholders unexpanded); after the processor expands the image tokens, the answer is the last
that many real tokens of each row, which is robust to any image-token expansion.
"""
from __future__ import annotations

import torch

IGNORE_INDEX = -100


def user_message(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def render(processor, question: str, answer: str) -> tuple[str, str]:
    """(prompt, full conversation) strings; the prompt is a prefix of the full text."""
    user = user_message(question)
    prompt = processor.apply_chat_template(user, add_generation_prompt=True)
    full = processor.apply_chat_template(
        user + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    )
    if not full.startswith(prompt):
        raise ValueError("chat template renders the assistant turn in a way that does not extend "
                         f"the generation prompt: {prompt!r} vs {full!r}")
    return prompt, full


class AnswerOnlyCollator:
    def __init__(self, processor, max_length: int | None = None):
        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length

    def n_answer_tokens(self, prompt: str, full: str) -> int:
        tok = self.tokenizer
        n_full = len(tok(full, add_special_tokens=False)["input_ids"])
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        return n_full - n_prompt

    def __call__(self, rows: list[dict]) -> dict:
        texts, images, n_answer = [], [], []
        for row in rows:
            prompt, full = render(self.processor, row["question"], row["answer"])
            texts.append(full)
            images.append(row["image"].convert("RGB"))
            n_answer.append(self.n_answer_tokens(prompt, full))
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        for i, n in enumerate(n_answer):
            real = batch["attention_mask"][i].nonzero().flatten()  # works for left or right padding
            answer_pos = real[len(real) - n:]
            labels[i, answer_pos] = batch["input_ids"][i, answer_pos]
        batch["labels"] = labels
        return dict(batch)
