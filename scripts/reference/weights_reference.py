#!/usr/bin/env python3
"""Reference values of a few SmolLM2-135M-Instruct (Q4_1 GGUF) tensors, dequantised by
gguf-py and with q/k rows un-permuted by transformers, for engine/tests/model_files.rs.

Usage:
    python scripts/reference/weights_reference.py GGUF_FILE engine/tests/data/smollm2-weights.json

Row sums of the whole tensor catch a wrong row order; the first columns of a few rows
catch a wrong order within rows.
"""

import json
import sys

from gguf import GGUFReader, dequantize
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

TENSORS = {
    "blk.0.attn_q.weight": "model.layers.0.self_attn.q_proj.weight",
    "blk.0.attn_k.weight": "model.layers.0.self_attn.k_proj.weight",
    "blk.29.attn_q.weight": "model.layers.29.self_attn.q_proj.weight",
    "blk.29.attn_k.weight": "model.layers.29.self_attn.k_proj.weight",
    "blk.0.attn_v.weight": "model.layers.0.self_attn.v_proj.weight",
    "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
}


def main():
    gguf_path, out_path = sys.argv[1], sys.argv[2]
    reader = GGUFReader(gguf_path)
    heads = int(reader.fields["llama.attention.head_count"].contents())
    kv_heads = int(reader.fields["llama.attention.head_count_kv"].contents())
    processor = LlamaTensorProcessor(
        config={"num_attention_heads": heads, "num_key_value_heads": kv_heads}
    )
    by_name = {t.name: t for t in reader.tensors}
    out = []
    for gguf_name, hf_name in TENSORS.items():
        t = by_name[gguf_name]
        w = dequantize(t.data, t.tensor_type)
        w = processor.process(w, gguf_name).weights
        if w.ndim == 1:
            w = w.reshape(1, -1)
        rows = sorted({0, 1, 2, 31, 32, 33, w.shape[0] - 1})
        rows = [r for r in rows if r < w.shape[0]][:7]
        out.append(
            {
                "name": hf_name,
                "shape": list(w.shape) if w.shape[0] > 1 else [w.shape[1]],
                "row_sums": [float(s) for s in w.astype("float64").sum(axis=1)[:1024]],
                "rows": {str(r): [float(x) for x in w[r, :8]] for r in rows},
            }
        )
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
