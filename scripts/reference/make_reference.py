#!/usr/bin/env python3
"""Reference data for helora's Rust forward passes and tokenizer.

Writes into engine/tests/data/ (relative to the repository root):

  tiny-llama/     config.json, model.safetensors, reference.json   (LlamaForCausalLM)
  tiny-qwen2/     config.json, model.safetensors, reference.json   (Qwen2ForCausalLM)
  tiny-chatglm2/  config.json, model.safetensors, reference.json   (ChatGLM2 layout)
  smollm2/        reference.json, reference.safetensors            (the default GGUF model)
  smollm2/        lora_reference.json, lora_reference.safetensors  (the same + adapters/smollm2-nimbus)

Everything is deterministic: the tiny weights and token sequences come from seeded
torch generators, the SmolLM2 continuations are greedy (argmax), all in float32 on CPU.

    .venv/bin/python scripts/reference/make_reference.py                # everything
    .venv/bin/python scripts/reference/make_reference.py --parts tiny    # only the tiny models

ChatGLM2's modeling code is not part of transformers, so `ChatGLM2ForCausalLM` below is a
self-contained PyTorch re-implementation of THUDM's ChatGLM2-6B forward (see the README
for the exact conventions). It is cross-checked at generation time against transformers'
independent `GlmForCausalLM` (GLM-4, the same block structure) after renaming the weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

torch.set_num_threads(int(os.environ.get("HELORA_THREADS", "2")))

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "engine" / "tests" / "data"
SMOL_DIR = os.environ.get("HELORA_SMOLLM2_DIR", os.path.expanduser("~/.cache/helora/models"))
SMOL_GGUF = os.environ.get("HELORA_SMOLLM2_GGUF", "SmolLM2-135M-Instruct.Q4_1.gguf")
ADAPTER_DIR = REPO / "adapters" / "smollm2-nimbus"

SEQ_LENGTHS = (1, 5, 12)


def r7(x: float) -> float:
    """Round to 7 significant digits (what a float32 carries)."""
    return float(f"{x:.7g}")


def nested(t: torch.Tensor):
    if t.dim() == 0:
        return r7(t.item())
    return [nested(s) for s in t]


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size} bytes)")


def token_sequences(vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in SEQ_LENGTHS]


def randomize_(model: torch.nn.Module, seed: int, weight_std: float, embed_std: float) -> None:
    """Overwrite every parameter from one seeded generator, in name order.

    Norm weights are 1 + 0.1·N(0,1) (so a forgotten norm weight shows up), biases
    0.05·N(0,1), embeddings embed_std·N(0,1), other matrices weight_std·N(0,1).
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * z)
            elif name.endswith(".bias"):
                p.copy_(0.05 * z)
            elif "embed" in name:
                p.copy_(embed_std * z)
            else:
                p.copy_(weight_std * z)


def check_reload(forward_a, forward_b, seqs, what: str) -> None:
    """The files on disk must give the logits that are written beside them."""
    with torch.no_grad():
        for ids in seqs:
            x = torch.tensor([ids])
            d = (forward_a(x) - forward_b(x)).abs().max().item()
            assert d == 0.0, (what, d)
    print(f"  reloaded {what} from disk: identical logits")


def full_logits(forward, seqs: list[list[int]]) -> list[dict]:
    out = []
    with torch.no_grad():
        for ids in seqs:
            logits = forward(torch.tensor([ids]))[0]  # [seq, vocab], one full non-cached forward
            out.append({"token_ids": ids, "logits": nested(logits.float())})
            print(f"  len {len(ids):2d}: logits std {logits.std().item():.3f}, "
                  f"last argmax {int(logits[-1].argmax())}")
    return out


# ---------------------------------------------------------------------------------------
# tiny Llama and Qwen2 (transformers' own implementations)
# ---------------------------------------------------------------------------------------

def save_hf(model, out: Path, extra_config: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    # transformers >= 5 writes the rope base only under rope_parameters; add the
    # transformers-4 top-level key too, which is what most checkpoints on the hub carry.
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(extra_config)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for extra in ("generation_config.json",):
        if (out / extra).exists():
            (out / extra).unlink()


def make_tiny_llama() -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    print("tiny-llama")
    facts = dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, intermediate_size=128, rope_theta=10000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=128)
    cfg = LlamaConfig(
        vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, intermediate_size=128, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=128,
        attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    model = LlamaForCausalLM(cfg).float().eval()
    randomize_(model, seed=1001, weight_std=0.08, embed_std=0.1)
    out = DATA / "tiny-llama"
    save_hf(model, out, {"rope_theta": 10000.0, "torch_dtype": "float32"})
    seqs = token_sequences(256, seed=2001)
    again = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    check_reload(lambda x: model(input_ids=x).logits, lambda x: again(input_ids=x).logits,
                 seqs, "tiny-llama")
    write_json(out / "reference.json", {
        "model": "tiny-llama",
        "architecture": "LlamaForCausalLM",
        "generator": "scripts/reference/make_reference.py (transformers LlamaForCausalLM, float32)",
        "config": facts,
        "tensors": sorted(k for k in model.state_dict()),
        "logits_note": "logits[p] are the next-token logits after token_ids[0..=p], "
                       "one full causal forward, positions 0..len-1, no cache",
        "sequences": full_logits(lambda x: model(input_ids=x).logits, seqs),
    })


def make_tiny_qwen2() -> None:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    print("tiny-qwen2")
    facts = dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, intermediate_size=128, rope_theta=1000000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, qkv_bias=True,
                 max_position_embeddings=128)
    cfg = Qwen2Config(
        vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=128, hidden_act="silu",
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        rms_norm_eps=1e-6, tie_word_embeddings=True, max_position_embeddings=128,
        use_sliding_window=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    model = Qwen2ForCausalLM(cfg).float().eval()
    randomize_(model, seed=1002, weight_std=0.08, embed_std=0.1)
    # tied: lm_head.weight is model.embed_tokens.weight (same Parameter)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    for layer in model.model.layers:
        a = layer.self_attn
        assert a.q_proj.bias is not None and a.k_proj.bias is not None and a.v_proj.bias is not None
        assert a.o_proj.bias is None
    out = DATA / "tiny-qwen2"
    save_hf(model, out, {"rope_theta": 1000000.0, "torch_dtype": "float32"})
    seqs = token_sequences(256, seed=2002)
    again = Qwen2ForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    check_reload(lambda x: model(input_ids=x).logits, lambda x: again(input_ids=x).logits,
                 seqs, "tiny-qwen2")
    write_json(out / "reference.json", {
        "model": "tiny-qwen2",
        "architecture": "Qwen2ForCausalLM",
        "generator": "scripts/reference/make_reference.py (transformers Qwen2ForCausalLM, float32)",
        "config": facts,
        "tensors": sorted(k for k in model.state_dict() if k != "lm_head.weight"),
        "logits_note": "logits[p] are the next-token logits after token_ids[0..=p], "
                       "one full causal forward, positions 0..len-1, no cache; lm_head is "
                       "tied to model.embed_tokens.weight (no lm_head.weight in the file)",
        "sequences": full_logits(lambda x: model(input_ids=x).logits, seqs),
    })


# ---------------------------------------------------------------------------------------
# ChatGLM2 (re-implemented; THUDM's modeling_chatglm.py is not in transformers)
# ---------------------------------------------------------------------------------------

class ChatGLM2Config:
    def __init__(self, d: dict):
        self.__dict__.update(d)
        self.head_dim = d["kv_channels"]
        self.rot_dim = self.head_dim // 2  # rotary on the first half of every head only


def glm_rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def glm_rope_cos_sin(n_pos: int, rot_dim: int, rope_ratio: float):
    """cos/sin tables [n_pos, rot_dim/2]; pair i (dims 2i, 2i+1) turns at
    angle pos · (10000·rope_ratio)^(-2i/rot_dim)."""
    base = 10000.0 * rope_ratio
    inv_freq = 1.0 / (base ** (torch.arange(0, rot_dim, 2, dtype=torch.float32) / rot_dim))
    ang = torch.outer(torch.arange(n_pos, dtype=torch.float32), inv_freq)
    return ang.cos(), ang.sin()


def glm_apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [batch, heads, seq, head_dim]. Rotates the interleaved pairs (x[2i], x[2i+1]) of
    the first rot_dim = 2·cos.shape[-1] dims, leaves x[rot_dim:] untouched."""
    rot_dim = 2 * cos.shape[-1]
    xr, xp = x[..., :rot_dim], x[..., rot_dim:]
    x0, x1 = xr[..., 0::2], xr[..., 1::2]
    y0 = x0 * cos - x1 * sin
    y1 = x1 * cos + x0 * sin
    return torch.cat([torch.stack([y0, y1], dim=-1).flatten(-2), xp], dim=-1)


class ChatGLM2ForCausalLM(torch.nn.Module):
    """ChatGLM2-6B's forward (THUDM modeling_chatglm.py), batch-first, no KV cache."""

    def __init__(self, cfg: ChatGLM2Config):
        super().__init__()
        self.cfg = cfg
        h, hd, nh, ng = cfg.hidden_size, cfg.head_dim, cfg.num_attention_heads, cfg.multi_query_group_num
        P = torch.nn.Parameter
        self.params = torch.nn.ParameterDict()
        p = {}
        p["transformer.embedding.word_embeddings.weight"] = (cfg.padded_vocab_size, h)
        for i in range(cfg.num_layers):
            L = f"transformer.encoder.layers.{i}."
            p[L + "input_layernorm.weight"] = (h,)
            p[L + "self_attention.query_key_value.weight"] = (nh * hd + 2 * ng * hd, h)
            p[L + "self_attention.query_key_value.bias"] = (nh * hd + 2 * ng * hd,)
            p[L + "self_attention.dense.weight"] = (h, nh * hd)
            p[L + "post_attention_layernorm.weight"] = (h,)
            p[L + "mlp.dense_h_to_4h.weight"] = (2 * cfg.ffn_hidden_size, h)
            p[L + "mlp.dense_4h_to_h.weight"] = (h, cfg.ffn_hidden_size)
        p["transformer.encoder.final_layernorm.weight"] = (h,)
        p["transformer.output_layer.weight"] = (cfg.padded_vocab_size, h)
        self.names = list(p)
        for k, shape in p.items():
            self.params[k.replace(".", "__")] = P(torch.zeros(shape))

    def w(self, name: str) -> torch.Tensor:
        return self.params[name.replace(".", "__")]

    def state_dict_hf(self) -> dict:
        return {k: self.w(k).detach().contiguous() for k in self.names}

    def named_parameters_hf(self):
        return [(k, self.w(k)) for k in self.names]

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        b, s = input_ids.shape
        nh, ng, hd = c.num_attention_heads, c.multi_query_group_num, c.head_dim
        eps = c.layernorm_epsilon
        x = F.embedding(input_ids, self.w("transformer.embedding.word_embeddings.weight"))
        cos, sin = glm_rope_cos_sin(s, c.rot_dim, getattr(c, "rope_ratio", 1.0))
        causal = torch.ones(s, s, dtype=torch.bool).tril()
        for i in range(c.num_layers):
            L = f"transformer.encoder.layers.{i}."
            # attention block
            hn = glm_rms_norm(x, self.w(L + "input_layernorm.weight"), eps)
            qkv = F.linear(hn, self.w(L + "self_attention.query_key_value.weight"),
                           self.w(L + "self_attention.query_key_value.bias"))
            q, k, v = qkv.split([nh * hd, ng * hd, ng * hd], dim=-1)
            q = q.view(b, s, nh, hd).transpose(1, 2)  # [b, nh, s, hd]
            k = k.view(b, s, ng, hd).transpose(1, 2)  # [b, ng, s, hd]
            v = v.view(b, s, ng, hd).transpose(1, 2)
            q = glm_apply_rope(q, cos, sin)
            k = glm_apply_rope(k, cos, sin)
            # query head j reads kv group j // (nh/ng)
            k = k.repeat_interleave(nh // ng, dim=1)
            v = v.repeat_interleave(nh // ng, dim=1)
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            scores = scores.masked_fill(~causal, float("-inf"))
            ctx = scores.softmax(-1) @ v  # [b, nh, s, hd]
            ctx = ctx.transpose(1, 2).reshape(b, s, nh * hd)  # heads concatenated, head-major
            x = x + F.linear(ctx, self.w(L + "self_attention.dense.weight"))
            # MLP block (SwiGLU)
            hn = glm_rms_norm(x, self.w(L + "post_attention_layernorm.weight"), eps)
            up = F.linear(hn, self.w(L + "mlp.dense_h_to_4h.weight"))
            gate, lin = up.chunk(2, dim=-1)  # first half gated
            x = x + F.linear(F.silu(gate) * lin, self.w(L + "mlp.dense_4h_to_h.weight"))
        x = glm_rms_norm(x, self.w("transformer.encoder.final_layernorm.weight"), eps)
        return F.linear(x, self.w("transformer.output_layer.weight"))


def glm_cross_check(model: ChatGLM2ForCausalLM, seqs) -> float:
    """Load the same weights into transformers' GlmForCausalLM and compare logits."""
    from transformers import GlmConfig, GlmForCausalLM

    c = model.cfg
    nh, ng, hd = c.num_attention_heads, c.multi_query_group_num, c.head_dim
    gcfg = GlmConfig(
        vocab_size=c.padded_vocab_size, hidden_size=c.hidden_size,
        intermediate_size=c.ffn_hidden_size, num_hidden_layers=c.num_layers,
        num_attention_heads=nh, num_key_value_heads=ng, head_dim=hd,
        rms_norm_eps=c.layernorm_epsilon, attention_bias=True, tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0 * c.rope_ratio,
                         "partial_rotary_factor": 0.5},
        max_position_embeddings=c.seq_length, pad_token_id=0, eos_token_id=2,
    )
    glm = GlmForCausalLM(gcfg).float().eval()
    sd = model.state_dict_hf()
    new = {"model.embed_tokens.weight": sd["transformer.embedding.word_embeddings.weight"],
           "model.norm.weight": sd["transformer.encoder.final_layernorm.weight"],
           "lm_head.weight": sd["transformer.output_layer.weight"]}
    for i in range(c.num_layers):
        L, G = f"transformer.encoder.layers.{i}.", f"model.layers.{i}."
        W = sd[L + "self_attention.query_key_value.weight"]
        B = sd[L + "self_attention.query_key_value.bias"]
        for name, a, z in (("q", 0, nh * hd), ("k", nh * hd, (nh + ng) * hd),
                           ("v", (nh + ng) * hd, (nh + 2 * ng) * hd)):
            new[G + f"self_attn.{name}_proj.weight"] = W[a:z]
            new[G + f"self_attn.{name}_proj.bias"] = B[a:z]
        new[G + "self_attn.o_proj.weight"] = sd[L + "self_attention.dense.weight"]
        new[G + "input_layernorm.weight"] = sd[L + "input_layernorm.weight"]
        new[G + "post_attention_layernorm.weight"] = sd[L + "post_attention_layernorm.weight"]
        new[G + "mlp.gate_up_proj.weight"] = sd[L + "mlp.dense_h_to_4h.weight"]
        new[G + "mlp.down_proj.weight"] = sd[L + "mlp.dense_4h_to_h.weight"]
    missing, unexpected = glm.load_state_dict(new, strict=False)
    assert not unexpected and not [m for m in missing if "rotary" not in m], (missing, unexpected)
    worst = 0.0
    with torch.no_grad():
        for ids in seqs:
            x = torch.tensor([ids])
            worst = max(worst, (glm(input_ids=x).logits - model(x)).abs().max().item())
    return worst


def make_tiny_chatglm2() -> None:
    print("tiny-chatglm2")
    cfgd = {
        "architectures": ["ChatGLMModel"],
        "model_type": "chatglm",
        "num_layers": 2,
        "hidden_size": 64,
        "ffn_hidden_size": 96,
        "kv_channels": 16,
        "num_attention_heads": 4,
        "multi_query_attention": True,
        "multi_query_group_num": 2,
        "padded_vocab_size": 256,
        "layernorm_epsilon": 1e-5,
        "seq_length": 128,
        "add_bias_linear": False,
        "add_qkv_bias": True,
        "rmsnorm": True,
        "post_layer_norm": True,
        "apply_residual_connection_post_layernorm": False,
        "apply_query_key_layer_scaling": True,
        "attention_softmax_in_fp32": True,
        "fp32_residual_connection": False,
        "original_rope": True,
        "rope_ratio": 1.0,
        "hidden_dropout": 0.0,
        "attention_dropout": 0.0,
        "tie_word_embeddings": False,
        "use_cache": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": 0,
        "torch_dtype": "float32",
    }
    cfg = ChatGLM2Config(cfgd)
    model = ChatGLM2ForCausalLM(cfg).eval()
    # same recipe as randomize_, over the real tensor names
    g = torch.Generator().manual_seed(1003)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters_hf(), key=lambda kv: kv[0]):
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "layernorm" in name:
                p.copy_(1.0 + 0.1 * z)
            elif name.endswith(".bias"):
                p.copy_(0.05 * z)
            elif "word_embeddings" in name:
                p.copy_(0.1 * z)
            else:
                p.copy_(0.08 * z)
    out = DATA / "tiny-chatglm2"
    out.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict_hf(), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(cfgd, indent=2, sort_keys=True) + "\n")
    seqs = token_sequences(256, seed=2003)
    again = ChatGLM2ForCausalLM(ChatGLM2Config(json.loads((out / "config.json").read_text())))
    with torch.no_grad():
        for k, t in load_file(str(out / "model.safetensors")).items():
            again.w(k).copy_(t)
    check_reload(model, again.eval(), seqs, "tiny-chatglm2")
    worst = glm_cross_check(model, seqs)
    print(f"  cross-check vs transformers GlmForCausalLM: max |diff| = {worst:.2e}")
    assert worst < 1e-4, worst
    write_json(out / "reference.json", {
        "model": "tiny-chatglm2",
        "architecture": "ChatGLM2 (THUDM chatglm2-6b modeling_chatglm.py), re-implemented",
        "generator": "scripts/reference/make_reference.py (ChatGLM2ForCausalLM, float32), "
                     f"cross-checked against transformers GlmForCausalLM (max |diff| {worst:.1e})",
        "config": {
            "vocab_size": 256, "hidden_size": 64, "num_layers": 2, "num_attention_heads": 4,
            "multi_query_group_num": 2, "head_dim": 16, "ffn_hidden_size": 96,
            "rotary_dim": 8, "rope_base": 10000.0, "rope_ratio": 1.0,
            "layernorm_epsilon": 1e-5, "qkv_bias": True, "tie_word_embeddings": False,
        },
        "conventions": {
            "query_key_value": "rows [0, nh*hd) = q (head-major: head j is rows j*hd..), then "
                               "ng*hd rows of k, then ng*hd rows of v; bias in the same order",
            "gqa": "query head j uses kv group j // (nh/ng)",
            "rotary": "first rot_dim = hd/2 dims of each q/k head, interleaved pairs "
                      "(2i, 2i+1), i < rot_dim/2: y[2i] = x[2i]cos - x[2i+1]sin, "
                      "y[2i+1] = x[2i+1]cos + x[2i]sin, angle = pos * "
                      "(10000*rope_ratio)^(-2i/rot_dim); dims rot_dim.. pass through",
            "attention_scale": "1/sqrt(hd)",
            "mlp": "u = dense_h_to_4h(x) (2*ffn rows); a = u[:ffn], b = u[ffn:]; "
                   "dense_4h_to_h(silu(a) * b)",
            "norm": "RMSNorm: w * x / sqrt(mean(x^2) + eps)",
        },
        "tensors": sorted(model.names),
        "logits_note": "logits[p] are the next-token logits after token_ids[0..=p], "
                       "one full causal forward, positions 0..len-1, no cache",
        "sequences": full_logits(model, seqs),
    })


# ---------------------------------------------------------------------------------------
# SmolLM2-135M-Instruct (GGUF, dequantized to float32 by transformers)
# ---------------------------------------------------------------------------------------

SMOL_PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about the ocean.",
    "How many legs does a spider have?",
]

TOKENIZER_STRINGS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "  two leading spaces, then   three,\tand a tab",
    "line one\nline two\n\n\nafter three newlines\r\nwindows line end",
    "Numbers: 0 7 42 123 4567 89012 3.14159 -17 1,000,000 2024-06-30",
    "Unicode: café naïve Zürich façade, Ελληνικά, русский, 日本語のテキスト, 한국어, emoji 🤖🚀👍🏽",
    "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b  # sum\n\nprint(add(2, 3))\n",
    "fn main() {\n\tlet v: Vec<u32> = (0..10).map(|x| x * x).collect();\n}",
    "<|im_start|>user\nHi there!<|im_end|>\n",
    "   ",
    "\n",
    "don't won't I'm you're we'll they've HELLO hello HeLLo",
]


def load_smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF)
    model = AutoModelForCausalLM.from_pretrained(SMOL_DIR, gguf_file=SMOL_GGUF,
                                                 dtype=torch.float32).eval()
    return tok, model


def chat_ids(tok, prompt: str):
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                   add_generation_prompt=True)
    ids = tok(text, add_special_tokens=False).input_ids
    return text, ids


def greedy(model, ids: list[int], max_new: int, eos: int = 2):
    """Greedy decoding with a KV cache; returns (new ids incl. eos if hit, last-position
    logits of the prompt)."""
    out, first = [], None
    with torch.no_grad():
        res = model(input_ids=torch.tensor([ids]), use_cache=True)
        past = res.past_key_values
        logits = res.logits[0, -1]
        first = logits.clone()
        for _ in range(max_new):
            nxt = int(logits.argmax())
            out.append(nxt)
            if nxt == eos:
                break
            res = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
            past = res.past_key_values
            logits = res.logits[0, -1]
    return out, first


def smol_config_facts(model) -> dict:
    c = model.config
    return {
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim,
        "intermediate_size": c.intermediate_size,
        "rope_theta": c.rope_parameters["rope_theta"], "rms_norm_eps": c.rms_norm_eps,
        "tie_word_embeddings": c.tie_word_embeddings, "bos_token_id": 1, "eos_token_id": 2,
    }


def top_k(logits: torch.Tensor, k: int = 5) -> list[dict]:
    v, i = logits.topk(k)
    return [{"id": int(a), "logit": r7(float(b))} for a, b in zip(i, v)]


def make_smollm2(tok=None, model=None):
    print("smollm2")
    if model is None:
        tok, model = load_smollm2()
    out = DATA / "smollm2"
    out.mkdir(parents=True, exist_ok=True)
    tensors, prompts = {}, []
    for n, prompt in enumerate(SMOL_PROMPTS):
        text, ids = chat_ids(tok, prompt)
        new, last = greedy(model, ids, max_new=16)
        name = f"prompt{n}.last_logits"
        tensors[name] = last.float().contiguous()
        prompts.append({
            "prompt": prompt,
            "chat_text": text,
            "token_ids": ids,
            "last_logits_tensor": name,
            "last_logits_top5": top_k(last),
            "greedy_ids": new,
            "greedy_text": tok.decode(new, skip_special_tokens=False),
            "greedy_stopped_at_eos": bool(new and new[-1] == 2),
        })
        print(f"  {prompt!r}: {len(ids)} ids -> {tok.decode(new)!r}")
    strings = []
    for s in TOKENIZER_STRINGS:
        ids = tok(s, add_special_tokens=False).input_ids
        strings.append({"text": s, "ids": ids, "tokens": tok.convert_ids_to_tokens(ids),
                        "decoded": tok.decode(ids)})
    save_file(tensors, str(out / "reference.safetensors"), metadata={"format": "pt"})
    print(f"wrote {(out / 'reference.safetensors').relative_to(REPO)}")
    write_json(out / "reference.json", {
        "model": "SmolLM2-135M-Instruct",
        "gguf": SMOL_GGUF,
        "generator": "scripts/reference/make_reference.py: transformers AutoModelForCausalLM "
                     "from the GGUF (Q4_1 dequantized to float32), CPU, float32",
        "config": smol_config_facts(model),
        "chat_template_call": "apply_chat_template([{role: user, content: prompt}], "
                              "tokenize=False, add_generation_prompt=True); ids = "
                              "tokenizer(text, add_special_tokens=False) (no extra BOS)",
        "logits_file": "reference.safetensors (float32 [vocab] per prompt)",
        "greedy_note": "argmax decoding with KV cache, up to 16 new tokens, stops after "
                       "emitting eos id 2 (<|im_end|>), which is then the last of greedy_ids",
        "prompts": prompts,
        "tokenizer": {
            "note": "ids of tokenizer(text, add_special_tokens=False); special tokens written "
                    "in the text (<|im_start|>, <|im_end|>) are matched as single tokens",
            "cases": strings,
        },
    })
    return tok, model


LORA_PROMPTS = [
    "What does error E4 mean on my Nimbus NB-3?",
    "How often should I descale the Nimbus NB-3?",
]


def make_lora_reference(tok=None, model=None):
    from peft import PeftModel

    print("smollm2 + lora")
    if not (ADAPTER_DIR / "adapter_model.safetensors").exists():
        print(f"  {ADAPTER_DIR} has no adapter; run scripts/train_adapter.py first", file=sys.stderr)
        return
    if model is None:
        tok, model = load_smollm2()
    peft_model = PeftModel.from_pretrained(model, str(ADAPTER_DIR)).eval()
    acfg = json.loads((ADAPTER_DIR / "adapter_config.json").read_text())
    out = DATA / "smollm2"
    out.mkdir(parents=True, exist_ok=True)
    tensors, prompts = {}, []
    for n, prompt in enumerate(LORA_PROMPTS):
        text, ids = chat_ids(tok, prompt)
        new, last = greedy(peft_model, ids, max_new=24)
        with peft_model.disable_adapter(), torch.no_grad():
            base_last = peft_model(input_ids=torch.tensor([ids])).logits[0, -1]
        name = f"prompt{n}.last_logits"
        tensors[name] = last.float().contiguous()
        tensors[f"prompt{n}.base_last_logits"] = base_last.float().contiguous()
        prompts.append({
            "prompt": prompt, "chat_text": text, "token_ids": ids,
            "last_logits_tensor": name, "last_logits_top5": top_k(last),
            "base_last_logits_tensor": f"prompt{n}.base_last_logits",
            "base_last_logits_top5": top_k(base_last),
            "max_abs_adapted_minus_base": r7((last - base_last).abs().max().item()),
            "greedy_ids": new, "greedy_text": tok.decode(new, skip_special_tokens=False),
            "greedy_stopped_at_eos": bool(new and new[-1] == 2),
        })
        print(f"  {prompt!r}: -> {tok.decode(new)!r}")
    peft_model.unload()  # leave the base model as it was
    save_file(tensors, str(out / "lora_reference.safetensors"), metadata={"format": "pt"})
    print(f"wrote {(out / 'lora_reference.safetensors').relative_to(REPO)}")
    write_json(out / "lora_reference.json", {
        "model": "SmolLM2-135M-Instruct + adapters/smollm2-nimbus",
        "adapter": "adapters/smollm2-nimbus",
        "adapter_config": {k: acfg.get(k) for k in ("r", "lora_alpha", "lora_dropout",
                                                     "target_modules", "fan_in_fan_out",
                                                     "use_rslora", "bias")},
        "lora_note": "for each adapted projection W (q_proj, v_proj of every layer): "
                     "y = W x + (lora_alpha / r) * B (A x), A = lora_A.weight [r, in], "
                     "B = lora_B.weight [out, r]",
        "generator": "scripts/reference/make_reference.py: PEFT PeftModel over the GGUF model, "
                     "float32, CPU",
        "logits_file": "lora_reference.safetensors: float32 [vocab] per prompt, with the "
                       "adapter (promptN.last_logits) and without it (promptN.base_last_logits)",
        "greedy_note": "argmax decoding with KV cache, up to 24 new tokens, stops after eos id 2",
        "prompts": prompts,
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", default="tiny,smollm2,lora",
                    help="comma list of: tiny, llama, qwen2, chatglm2, smollm2, lora")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    if parts & {"tiny", "llama"}:
        make_tiny_llama()
    if parts & {"tiny", "qwen2"}:
        make_tiny_qwen2()
    if parts & {"tiny", "chatglm2"}:
        make_tiny_chatglm2()
    tok = model = None
    if "smollm2" in parts:
        tok, model = make_smollm2()
    if "lora" in parts:
        make_lora_reference(tok, model)


if __name__ == "__main__":
    main()
