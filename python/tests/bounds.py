"""The error bound of a decrypted LoRA delta (PLL off), derived in docs/python.md from
docs/security.md §2 and §4.2, and its first-order effect on a model's logits.

Per output entry of one token's delta, in the model's units:

    ε = T·σ_slot·2^shift + 2⁻²⁴·|δ| + 2⁻²⁴·(|x|·|W|)

- σ_slot: std of one decoded slot's error. The compact reply rounds c1 to `c1` bits and c0
  to `c0` bits of q0 (< 2^q0_bits); with a ternary secret (density 2/3) the rounding adds
  per coefficient a variance (q0/2^c1)²·(2N/3)/12 + (q0/2^c0)²/12, the circuit's own error
  at most ρ² (ρ ≤ 900 for d ≤ 4096, security.md §5: ≈ 850 measured), and decoding scales a coefficient std
  by √(N/2)/Δ per slot (§4.2);
- 2^shift: the client's input normalisation (security.md §2), multiplied back on output;
- T = 15: the tail. The rounding of c1 reaches slot i as (q0/2^c1)·r(ζ_i)·s(ζ_i)/Δ, the
  product of two near-Gaussian complex values (the rounding's and the secret key's
  evaluations), so one slot's error is Laplace-distributed, not Gaussian:
  P(|e| > t·σ_slot) = e^(−√2·t), 6·10⁻¹⁰ at t = 15 per entry (the secret key's largest
  |s(ζ_i)| makes some slots' errors ~3× the average for every token);
- 2⁻²⁴·|δ|: the delta is returned as float32; 2⁻²⁴·(|x|·|W|): the input is encrypted as
  float32 (W = scaling·AᵀBᵀ; zero for a float32 model, whose input already is).
"""

from __future__ import annotations

import math
from typing import Dict, List, Tuple

import numpy as np
import torch

from helora import he

TAIL = 15.0
RHO_MAX = 900.0
F32_UNIT = 2.0**-24
TARGET_LOG2 = 7  # the client scales inputs so that ‖x‖·2^bound_log2 ≤ 2^7


def slot_std() -> float:
    """σ_slot: the std of one decoded slot's error, normalised units."""
    p = he.parameters()
    n = p["n"]
    q0 = 2.0 ** p["q_bits"][0]
    c0_bits, c1_bits = p["reply_bits"]
    coefficient_var = (
        (q0 / 2.0**c1_bits) ** 2 * (2 * n / 3) / 12
        + (q0 / 2.0**c0_bits) ** 2 / 12
        + RHO_MAX**2
    )
    return math.sqrt(coefficient_var) * math.sqrt(n / 2) / 2.0 ** p["log_scale"]


def shifts(x: np.ndarray, bound_log2: int) -> np.ndarray:
    """Per row of x (float32 as encrypted): the client's normalisation exponent."""
    norms = np.linalg.norm(x.astype(np.float64), axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    exponents = np.ceil(np.log2(safe)).astype(np.int64) + bound_log2 - TARGET_LOG2
    return np.where(norms > 0, np.maximum(exponents, 0), 0)


def delta_bound(
    x: np.ndarray, delta: np.ndarray, w: np.ndarray, bound_log2: int, x_is_f32: bool
) -> np.ndarray:
    """ε per entry of the deltas (`delta`, exact, [tokens, d_out]) of inputs `x`
    ([tokens, d_in]) through W = `w` ([d_in, d_out])."""
    x32 = x.astype(np.float32)
    he_part = TAIL * slot_std() * np.exp2(shifts(x32, bound_log2).astype(np.float64))
    bound = he_part[:, None] + F32_UNIT * np.abs(delta)
    if not x_is_f32:
        bound = bound + F32_UNIT * (np.abs(x) @ np.abs(w))
    return bound


def lora_parts(module: torch.nn.Module) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """A PEFT LoRA layer's (A [r, d_in], B [d_out, r], scaling)."""
    a = module.lora_A["default"].weight
    b = module.lora_B["default"].weight
    return a, b, float(module.scaling["default"])


def lora_factors(module: torch.nn.Module) -> Tuple[np.ndarray, np.ndarray, float]:
    """`lora_parts` as float64 arrays."""
    a, b, scaling = lora_parts(module)
    return a.detach().double().numpy(), b.detach().double().numpy(), scaling


def peft_sites(peft_model: torch.nn.Module) -> Dict[str, torch.nn.Module]:
    """The PEFT LoRA layers by name."""
    return {
        name: m
        for name, m in peft_model.named_modules()
        if hasattr(m, "lora_A") and "default" in getattr(m, "lora_A", {})
    }


def logits_with_first_order_bound(
    peft_model: torch.nn.Module,
    ids: torch.Tensor,
    positions: List[int],
    manifest: List[dict],
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The PEFT model's logits at `positions` of the one sequence `ids`, and for each the
    first-order bound Σ |∂logit/∂δ|·ε over every entry of every adapted projection's delta."""
    from helora.torch import layer_of

    bound_log2 = {(p["layer"], p["module"]): p["bound_log2"] for p in manifest}
    perturbations: List[torch.Tensor] = []
    epsilons: List[torch.Tensor] = []
    handles = []

    def hook_for(name: str, module: torch.nn.Module):  # type: ignore[no-untyped-def]
        key = (layer_of(name), name.rsplit(".", 1)[-1])

        def hook(_m, args, output):  # type: ignore[no-untyped-def]
            x = args[0].detach()
            a, b, scaling = lora_parts(module)
            with torch.no_grad():
                delta = scaling * (x @ a.T @ b.T)
                w = scaling * (a.T @ b.T)
            rows = x.reshape(-1, x.shape[-1]).double().numpy()
            eps = delta_bound(
                rows,
                delta.reshape(-1, delta.shape[-1]).double().numpy(),
                w.double().numpy(),
                bound_log2[key],
                x.dtype == torch.float32,
            )
            epsilons.append(torch.from_numpy(eps).reshape(delta.shape))
            z = torch.zeros_like(output, requires_grad=True)
            perturbations.append(z)
            return output + z

        return hook

    for name, module in peft_sites(peft_model).items():
        handles.append(module.register_forward_hook(hook_for(name, module)))
    try:
        logits = peft_model(input_ids=ids).logits[0]
    finally:
        for h in handles:
            h.remove()
    vocab = logits.shape[-1]
    bound = torch.zeros(len(positions), vocab, dtype=torch.float64)
    for i, p in enumerate(positions):
        for k in range(vocab):
            grads = torch.autograd.grad(logits[p, k], perturbations, retain_graph=True)
            bound[i, k] = sum(
                float((g.abs().double() * e).sum()) for g, e in zip(grads, epsilons)
            )
    return logits[positions].detach(), bound
