"""Batches for supervised fine-tuning with the loss on the answer tokens only.

The conversation is rendered with the checkpoint's own chat template (the processor's), so every
family trains on the same text layout it is evaluated with. The labelled span starts where the
generation prompt ends (when the rendered conversation extends it) or else at the answer text
(some templates, e.g. LLaVA-OneVision's, render the assistant header of a finished turn
differently from the generation prompt), and ends with the family's end-of-turn token
(`</s>`, `<|im_end|>`, `<|eot_id|>`), so the model learns to answer and to stop. Spans are
counted in tokens from the end of each row, which is robust to any image-token expansion
(image placeholders always precede the answer).
"""
from __future__ import annotations

import torch

IGNORE_INDEX = -100


def user_message(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]


def render(processor, question: str, answer: str) -> tuple[str, str]:
    """(generation prompt, full conversation) strings rendered by the processor's chat template."""
    user = user_message(question)
    prompt = processor.apply_chat_template(user, add_generation_prompt=True)
    full = processor.apply_chat_template(
        user + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
    )
    return prompt, full


def answer_span(prompt: str, full: str, answer: str, end_of_turn: str | None) -> tuple[int, int]:
    """Character span [start, end) of `full` that is trained: answer + end-of-turn token."""
    if full.startswith(prompt):
        start = len(prompt)
    else:
        start = full.rfind(answer.strip())
        if start < 0 or not answer.strip():
            raise ValueError(f"cannot find the answer {answer!r} in the rendered conversation {full!r}")
    end = len(full)
    if end_of_turn:
        at = full.find(end_of_turn, max(start, full.rfind(answer.strip())))
        if at >= 0:
            end = at + len(end_of_turn)
    return start, end


class AnswerOnlyCollator:
    def __init__(self, processor, max_length: int | None = None, end_of_turn: str | None = None):
        self.processor = processor
        self.end_of_turn = end_of_turn
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self._n_tokens: dict[str, int] = {}

    def n_tokens(self, text: str) -> int:
        # three prefixes per row, most of them repeated across rows (same prompt template): cached
        if text not in self._n_tokens:
            if len(self._n_tokens) > 100_000:
                self._n_tokens.clear()
            self._n_tokens[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._n_tokens[text]

    def __call__(self, rows: list[dict]) -> dict:
        texts, images, spans = [], [], []
        for row in rows:
            prompt, full = render(self.processor, row["question"], row["answer"])
            start, end = answer_span(prompt, full, row["answer"], self.end_of_turn)
            texts.append(full)
            images.append(row["image"].convert("RGB"))
            n_end = self.n_tokens(full[:end])
            spans.append((n_end - self.n_tokens(full[:start]), self.n_tokens(full) - n_end))
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
        for i, (n_answer, n_tail) in enumerate(spans):
            real = batch["attention_mask"][i].nonzero().flatten()  # works for left or right padding
            answer_pos = real[len(real) - n_tail - n_answer:len(real) - n_tail]
            labels[i, answer_pos] = batch["input_ids"][i, answer_pos]
        batch["labels"] = labels
        return dict(batch)
