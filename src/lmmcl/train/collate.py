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
    def __init__(self, processor, max_length: int | None = None, end_of_turn: str | None = None,
                 cache_examples: bool = True):
        self.processor = processor
        self.end_of_turn = end_of_turn
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.max_length = max_length
        self._n_tokens: dict[str, int] = {}
        # per example id: (input_ids, pixel_values, answer span), see _from_examples
        self._examples: dict | None = {} if cache_examples else None

    def n_tokens(self, text: str) -> int:
        # three prefixes per row, most of them repeated across rows (same prompt template): cached
        if text not in self._n_tokens:
            if len(self._n_tokens) > 100_000:
                self._n_tokens.clear()
            self._n_tokens[text] = len(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        return self._n_tokens[text]

    def _render(self, row) -> tuple[str, tuple[int, int]]:
        """(full conversation text, (answer tokens, tokens after the answer)) of one row."""
        prompt, full = render(self.processor, row["question"], row["answer"])
        start, end = answer_span(prompt, full, row["answer"], self.end_of_turn)
        n_end = self.n_tokens(full[:end])
        return full, (n_end - self.n_tokens(full[:start]), self.n_tokens(full) - n_end)

    def __call__(self, rows: list[dict]) -> dict:
        if self._examples is not None and all(row.get("id") is not None for row in rows):
            batch = self._from_examples(rows)
            if batch is not None:
                return batch
        texts, images, spans = [], [], []
        for row in rows:
            full, span = self._render(row)
            texts.append(full)
            images.append(as_rgb(row["image"]))
            spans.append(span)
        batch = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        return _with_labels(dict(batch), spans)

    # A training run draws every example several times (the base: ~5 times): its features are
    # computed once per example id and batched by padding and stacking, which is exactly what the
    # processor's batch call does for processors whose outputs are input_ids, attention_mask and
    # one pixel_values image per example (LLaVA; tests/test_train.py checks the batches are equal).
    # Other processors (several patches or image grids per example) always take the batch call.
    CACHED_KEYS = {"input_ids", "attention_mask", "pixel_values"}

    def _from_examples(self, rows: list[dict]) -> dict | None:
        feats = []
        for row in rows:
            key = (row["id"], row["question"], row["answer"])  # an id may carry several labels
            if key not in self._examples:
                full, span = self._render(row)
                enc = self.processor(text=[full], images=[as_rgb(row["image"])], return_tensors="pt")
                if set(enc.keys()) != self.CACHED_KEYS or enc["pixel_values"].dim() != 4:
                    self._examples = None  # not a pad-and-stack processor: batch calls from now on
                    return None
                self._examples[key] = (enc["input_ids"][0], enc["pixel_values"][0], span)
            feats.append(self._examples[key])
        pad = self.tokenizer.pad_token_id
        length = max(len(ids) for ids, _, _ in feats)
        input_ids = torch.full((len(feats), length), pad, dtype=feats[0][0].dtype)
        attention_mask = torch.zeros((len(feats), length), dtype=torch.long)
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        for i, (ids, _, _) in enumerate(feats):
            where = slice(length - len(ids), length) if left else slice(0, len(ids))
            input_ids[i, where] = ids
            attention_mask[i, where] = 1
        batch = {"input_ids": input_ids, "attention_mask": attention_mask,
                 "pixel_values": torch.stack([pv for _, pv, _ in feats])}
        return _with_labels(batch, [span for _, _, span in feats])


def as_rgb(image):
    """A PIL RGB image from a decoded image or a datasets `Image(decode=False)` cell {bytes, path}."""
    if isinstance(image, dict):
        import io

        from PIL import Image

        image = Image.open(io.BytesIO(image["bytes"]) if image.get("bytes") is not None else image["path"])
    return image.convert("RGB")


def _with_labels(batch: dict, spans: list[tuple[int, int]]) -> dict:
    """`labels`: the answer tokens of each row (spans counted from the end of its real tokens),
    IGNORE_INDEX elsewhere."""
    labels = torch.full_like(batch["input_ids"], IGNORE_INDEX)
    for i, (n_answer, n_tail) in enumerate(spans):
        real = batch["attention_mask"][i].nonzero().flatten()  # works for left or right padding
        answer_pos = real[len(real) - n_tail - n_answer:len(real) - n_tail]
        labels[i, answer_pos] = batch["input_ids"][i, answer_pos]
    batch["labels"] = labels
    return batch
