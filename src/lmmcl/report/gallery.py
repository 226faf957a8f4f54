"""Answer gallery: a few fixed test examples per benchmark with every method's answer after every
stage, wrong answers marked -- forgetting you can see.

Inputs (as :mod:`lmmcl.report.aggregate`): the plan (:mod:`lmmcl.report.plan`), the
``<benchmark>.samples.jsonl`` next to each evaluation of the plan's first seed (:mod:`lmmcl.layout`;
doc id, id, question, target, response, score of every evaluated example) and, for the image, the benchmark's test parquet ``<data_root>/<dataset>/<split>.parquet``
(built-in lmms-eval benchmarks have no local images: their examples are shown without one).

The examples are the same for every method and stage: ``n`` doc ids spread evenly over the
benchmark's evaluated documents (the first, the last and evenly spaced ones in between), so a
rerun picks the same ones. An answer is *right* when its per-example score is full (1), *wrong*
when it is 0, *partial* in between (VQA accuracy), *n/a* when that evaluation is missing.

Outputs in ``<out_dir>`` (written together, atomically; :func:`gallery_outputs`):
``gallery.html`` (standalone: images embedded), ``gallery.json`` (the same data, no images) and
``<benchmark>.png`` per benchmark (one panel per example: image, question, gold answer, a
methods x stages grid of answers, green right / red wrong).
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path

from ..layout import DataLayout, Layout, gallery_files
from .plan import normalize_plan, stage_labels

__all__ = ["collect_gallery", "gallery_outputs", "write_gallery", "pick_doc_ids", "verdict"]

DEFAULT_EXAMPLES = 4
RIGHT, WRONG, PARTIAL, NA = "right", "wrong", "partial", "n/a"
_MARK = {RIGHT: "✓", WRONG: "✗", PARTIAL: "~", NA: ""}
_COLOR = {RIGHT: "#d4f4d4", WRONG: "#f8d0d0", PARTIAL: "#fbecc4", NA: "#eeeeee"}


def verdict(score) -> str:
    """right / wrong / partial / n/a from one example's score (0..1; None = not scored)."""
    if score is None:
        return NA
    score = float(score)
    if score != score:  # NaN
        return NA
    if score >= 1 - 1e-9:
        return RIGHT
    if score <= 1e-9:
        return WRONG
    return PARTIAL


def pick_doc_ids(doc_ids, n: int) -> list[int]:
    """`n` doc ids spread evenly over the sorted ids (all of them when there are fewer)."""
    ids = sorted(set(doc_ids))
    if n < 1:
        raise ValueError(f"gallery examples: {n} must be >= 1")
    if len(ids) <= n:
        return ids
    if n == 1:
        return [ids[0]]
    return [ids[round(i * (len(ids) - 1) / (n - 1))] for i in range(n)]


def _read_samples(path: Path) -> dict[int, dict] | None:
    if not path.is_file():
        return None
    rows = {}
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not valid JSON ({e})") from None
        rows[int(row["doc_id"])] = row
    return rows


def _test_images(benchmark: str, data_root, ids: list[str]) -> dict[str, bytes]:
    """{example id: PNG bytes} from the benchmark's local test parquet ({} for built-ins)."""
    from ..registry import benchmarks

    spec = benchmarks().get(benchmark) or {}
    if spec.get("builtin") or not spec.get("dataset"):
        return {}
    path = Path(DataLayout(data_root).split(spec["dataset"], spec.get("split", "test")))
    if not path.is_file():
        return {}
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["id", "image"])
    table = table.filter(pc.is_in(table["id"], value_set=pa.array(ids, type=pa.string())))
    out = {}
    for rid, img in zip(table["id"].to_pylist(), table["image"].to_pylist()):
        if isinstance(img, dict) and img.get("bytes"):
            out[rid] = img["bytes"]
    return out


def collect_gallery(results_dir, plan: Mapping, data_root, n: int = DEFAULT_EXAMPLES) -> dict:
    """The gallery's data: ``{"experiment", "methods", "stages": [labels], "benchmarks": {b:
    {"group", "trained_at": [stage k, ...], "examples": [{"doc_id", "id", "question", "gold",
    "has_image", "answers": {method: [{"stage", "response", "score", "verdict"}, ...]}}]}}}``
    plus the images under the private key ``"_images"`` ({(benchmark, id): PNG bytes})."""
    p = normalize_plan(plan)
    layout, seed = Layout(p["experiment"], root=results_dir), p["seeds"][0]

    def samples(m, k, task, b):
        return _read_samples(Path(layout.eval_samples(seed, m, k, task, b)))

    labels = stage_labels(p)
    group_of = {b: g for g, bs in p["groups"].items() for b in bs}
    out = {"experiment": p["experiment"], "seed": seed, "methods": p["methods"], "stages": labels, "benchmarks": {}}
    images: dict[tuple[str, str], bytes] = {}
    for b in p["benchmarks"]:
        runs = {}  # (method, k) -> samples
        base = samples(None, 0, None, b)
        for m in p["methods"]:
            runs[m, 0] = base
            for k, task in enumerate(p["sequence"], start=1):
                runs[m, k] = samples(m, k, task, b)
        present = [s for s in runs.values() if s]
        if not present:
            out["benchmarks"][b] = {"group": group_of.get(b), "trained_at": [], "examples": [],
                                    "missing": "no evaluation of this benchmark has samples yet"}
            continue
        doc_ids = pick_doc_ids(present[0].keys(), n)
        examples = []
        for d in doc_ids:
            ref = next((s[d] for s in present if d in s), {})
            ex = {"doc_id": d, "id": ref.get("id"), "question": ref.get("question"),
                  "gold": ref.get("target"), "answers": {}}
            for m in p["methods"]:
                row = []
                for k in range(len(labels)):
                    s = (runs[m, k] or {}).get(d)
                    row.append({"stage": k, "response": None if s is None else s.get("response"),
                                "score": None if s is None else s.get("score"),
                                "verdict": NA if s is None else verdict(s.get("score"))})
                ex["answers"][m] = row
            examples.append(ex)
        imgs = _test_images(b, data_root, [e["id"] for e in examples if e["id"]])
        for e in examples:
            e["has_image"] = e["id"] in imgs
            if e["has_image"]:
                images[b, e["id"]] = imgs[e["id"]]
        trained = [k for k, t in enumerate(p["stage_targets"], start=1) if t == b]
        out["benchmarks"][b] = {"group": group_of.get(b), "trained_at": trained, "examples": examples}
    out["_images"] = images
    return out


def gallery_outputs(out_dir, plan: Mapping) -> dict[str, Path | list[Path]]:
    files = gallery_files(Path(out_dir), normalize_plan(plan)["benchmarks"])
    return {"html": Path(files["html"]), "json": Path(files["json"]), "png": [Path(f) for f in files["png"]]}


# ------------------------------------------------------------------------------------ HTML
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em} h2{margin-top:2em;border-bottom:1px solid #ccc}
.ex{display:flex;gap:1.2em;align-items:flex-start;margin:1em 0;padding:.8em;border:1px solid #ddd;border-radius:6px}
.ex img{width:128px;height:128px;image-rendering:pixelated;border:1px solid #bbb}
.noimg{width:128px;height:128px;border:1px dashed #bbb;display:flex;align-items:center;justify-content:center;color:#888;font-size:.8em;text-align:center}
.q{white-space:pre-wrap;font-family:monospace;font-size:.85em;max-width:28em}
table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ccc;padding:.25em .45em;text-align:left;vertical-align:top}
th.trained{background:#fff3b0} td.right{background:#d4f4d4} td.wrong{background:#f8d0d0}
td.partial{background:#fbecc4} td.na{background:#eee;color:#888} .legend span{padding:.1em .5em;margin-right:.5em}
"""


def _cell_text(text, limit=40) -> tuple[str, str]:
    """(shown, full) of an answer: newlines as ⏎ (one line per cell), cut at `limit` characters."""
    text = "" if text is None else str(text).replace("\r", "").replace("\n", "⏎")
    shown = text if len(text) <= limit else text[: limit - 1] + "…"
    return shown, text


def _html(data: dict) -> str:
    e = html.escape
    labels = data["stages"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Answer gallery — {e(data['experiment'])}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>Answer gallery — experiment {e(data['experiment'])}</h1>",
             "<p>Fixed test examples of every benchmark with each method's answer after every stage "
             "(stage 0 = the base, shared). Highlighted column: the stage trained on this benchmark.</p>",
             "<p class='legend'><span style='background:#d4f4d4'>✓ right</span><span style='background:#f8d0d0'>"
             "✗ wrong</span><span style='background:#fbecc4'>~ partly right</span><span style='background:#eee'>"
             "n/a = not evaluated</span></p>"]
    for b, info in data["benchmarks"].items():
        parts.append(f"<h2 id='{e(b)}'>{e(b)} <small>({e(str(info.get('group')))}"
                     + (f", trained in stage {', '.join(map(str, info['trained_at']))}" if info["trained_at"] else "")
                     + ")</small></h2>")
        if not info["examples"]:
            parts.append(f"<p>{e(info.get('missing', 'no examples'))}</p>")
            continue
        for ex in info["examples"]:
            img = data["_images"].get((b, ex["id"]))
            pic = (f"<img alt='{e(str(ex['id']))}' src='data:image/png;base64,{base64.b64encode(img).decode()}'>"
                   if img else "<div class='noimg'>no local image<br>(built-in benchmark)</div>")
            head = "".join(f"<th{' class=trained' if k in info['trained_at'] else ''}>{e(lab)}</th>"
                           for k, lab in enumerate(labels))
            rows = []
            for m, answers in ex["answers"].items():
                cells = []
                for a in answers:
                    cls = a["verdict"].replace("/", "")
                    shown, full = _cell_text(a["response"])
                    mark = _MARK[a["verdict"]]
                    cells.append(f"<td class='{cls}' title='{e(full)}'>{mark} {e(shown.strip()) or '<i>(empty)</i>'}"
                                 if a["verdict"] != NA else "<td class='na'>n/a")
                    cells[-1] += "</td>"
                right = sum(a["verdict"] == RIGHT for a in answers)
                rows.append(f"<tr><th>{e(m)} <small>({right}/{len(answers)} ✓)</small></th>{''.join(cells)}</tr>")
            parts.append(
                f"<div class='ex'>{pic}<div><div><b>{e(str(ex['id']))}</b> (doc {ex['doc_id']})</div>"
                f"<div class='q'>{e(str(ex['question'] or ''))}</div><div>gold: <b>{e(str(ex['gold']))}</b></div>"
                f"<table><tr><th>method</th>{head}</tr>{''.join(rows)}</table></div></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------- PNG
def _png(data: dict, benchmark: str, path) -> None:
    from PIL import Image

    from .figures import new_figure

    info = data["benchmarks"][benchmark]
    labels = data["stages"]
    methods = data["methods"]
    examples = info["examples"] or [None]
    ncol = len(labels)
    width = 3.2 + 1.25 * ncol
    row_h = 1.1 + 0.3 * (len(methods) + 1)
    fig = new_figure(width, 0.9 + row_h * len(examples), dpi=100)
    trained = f", trained in stage {', '.join(map(str, info['trained_at']))}" if info["trained_at"] else ""
    fig.suptitle(f"{benchmark} ({info.get('group')}{trained}): answers after each stage", fontsize=11)
    top = 1 - 0.9 / fig.get_figheight()
    h = (top - 0.01) / len(examples)
    for i, ex in enumerate(examples):
        y0 = top - (i + 1) * h
        ax_img = fig.add_axes([0.01, y0 + 0.1 * h, 2.0 / width, 0.8 * h])
        ax_img.set_axis_off()
        if ex is None:
            ax_img.text(0, 0.5, info.get("missing", "no examples"), fontsize=9)
            continue
        img = data["_images"].get((benchmark, ex["id"]))
        if img:
            ax_img.imshow(Image.open(io.BytesIO(img)).convert("RGB"), interpolation="nearest")
        else:
            ax_img.text(0.5, 0.5, "no local image", ha="center", va="center", fontsize=8, color="0.5")
        q = str(ex["question"] or "").replace("\n", " ")
        q = q if len(q) <= 90 else q[:89] + "…"
        ax_tab = fig.add_axes([2.2 / width, y0 + 0.02 * h, 1 - 2.3 / width, 0.96 * h])
        ax_tab.set_axis_off()
        ax_tab.set_title(f"{ex['id']}: {q}\ngold: {ex['gold']}", fontsize=8, loc="left")
        text, colors = [], []
        for m in methods:
            row_t, row_c = [m], ["#f4f4f4"]
            for a in ex["answers"][m]:
                shown, _ = _cell_text(a["response"], limit=14)
                row_t.append("n/a" if a["verdict"] == NA else f"{_MARK[a['verdict']]} {shown.strip() or '(empty)'}")
                row_c.append(_COLOR[a["verdict"]])
            text.append(row_t)
            colors.append(row_c)
        col_colors = ["#f4f4f4"] + ["#fff3b0" if k in info["trained_at"] else "#f4f4f4" for k in range(ncol)]
        first = 0.16
        frac = min(1.0, 0.3 * (len(methods) + 1) / (0.96 * h * fig.get_figheight() - 0.35))
        tab = ax_tab.table(cellText=text, cellColours=colors, colLabels=["method", *labels], colColours=col_colors,
                           colWidths=[first] + [(1 - first) / ncol] * ncol, cellLoc="left",
                           bbox=[0, 1 - frac, 1, frac])
        tab.auto_set_font_size(False)
        tab.set_fontsize(7.5)
    fig.savefig(path, format="png", dpi=100)


def write_gallery(results_dir, plan: Mapping, data_root, out_dir, n: int = DEFAULT_EXAMPLES) -> dict:
    """Collect and write gallery.html, gallery.json and one PNG per benchmark, all together
    (nothing under the final names unless every file was written). Returns :func:`gallery_outputs`."""
    from ..atomic import atomic_paths

    data = collect_gallery(results_dir, plan, data_root, n=n)
    outs = gallery_outputs(out_dir, plan)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    public = {k: v for k, v in data.items() if not k.startswith("_")}
    bench = list(data["benchmarks"])
    with atomic_paths([outs["html"], outs["json"], *outs["png"]]) as tmps:
        tmps[0].write_text(_html(data), encoding="utf-8")
        tmps[1].write_text(json.dumps(public, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        for b, tmp in zip(bench, tmps[2:]):
            _png(data, b, tmp)
    return outs


def summary_line(outs: dict) -> str:
    return f"wrote {outs['html']}, {outs['json']} and {len(outs['png'])} PNG(s) in {os.path.dirname(outs['html'])}"
