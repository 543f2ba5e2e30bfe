"""With the Private Linear Layer on, the deltas carry the engine's noise: per output entry
N(0, σ_E²·‖u‖²) with u = x·Aᵀ and σ_E = σ·rms(scaling·B) (docs/security.md §3), the settings
the engine reports (σ = 0.1, flooding, budget), in process and against `helora serve`."""

from __future__ import annotations

import math
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
import torch

import helora
from bounds import delta_bound, lora_factors, peft_sites, slot_std
from conftest import Server, Setup, random_prompts
from helora.torch import layer_of

TOKENS = 12


def captured_inputs(setup: Setup) -> Dict[Tuple[int, str], np.ndarray]:
    """The float32 inputs of every adapted projection in one forward pass of the base model."""
    inputs: Dict[Tuple[int, str], np.ndarray] = {}
    handles = []
    for name, module in setup.base.named_modules():
        short = name.rsplit(".", 1)[-1]
        if isinstance(module, torch.nn.Linear) and layer_of(name) is not None:

            def keep(_m, args, _out, key=(layer_of(name), short)):  # type: ignore[no-untyped-def]
                inputs[key] = args[0].detach().reshape(-1, args[0].shape[-1]).numpy().copy()

            handles.append(module.register_forward_hook(keep))
    with torch.no_grad():
        setup.base(input_ids=torch.tensor(random_prompts(1, TOKENS, seed=11)))
    for h in handles:
        h.remove()
    return inputs


def noise_scores(setup: Setup, client: helora.Client) -> np.ndarray:
    """(helora delta − exact delta) / (σ_E·‖u‖) for every entry of every adapted projection."""
    inputs = captured_inputs(setup)
    sigma = client.pll["noise"]
    scores: List[np.ndarray] = []
    for name, module in peft_sites(setup.peft).items():
        key = (layer_of(name), name.rsplit(".", 1)[-1])
        a, b, scaling = lora_factors(module)
        x = inputs[key]
        (delta,) = client.deltas(key[0], [key[1]], x)
        u = x.astype(np.float64) @ a.T
        exact = scaling * u @ b.T
        sigma_e = sigma * math.sqrt(np.mean((scaling * b) ** 2))
        scores.append((delta - exact) / (sigma_e * np.linalg.norm(u, axis=1))[:, None])
    return np.concatenate([s.ravel() for s in scores])


def check_noise(setup: Setup, client: helora.Client) -> None:
    # The engine's defaults (PllSettings::default), as the server reports them.
    assert client.pll == {"noise": 0.1, "flooding": True, "budget": 4096}
    z = noise_scores(setup, client)
    n = z.size
    mean, std = float(z.mean()), float(z.std())
    print(f"\n{setup.kind}: {n} entries, noise/(σ_E‖u‖): mean {mean:+.4f}, std {std:.4f}")
    # Five standard errors of the sample mean and of the sample std of n N(0, 1) draws. The
    # compact reply's rounding and the flood add a few 1e-6 of σ_E‖u‖ here: far inside.
    assert abs(mean) <= 5 / math.sqrt(n), mean
    assert abs(std - 1) <= 5 / math.sqrt(2 * n), std


@pytest.fixture(scope="module")
def pll_client(setup: Setup) -> helora.Client:
    return helora.Client(in_process_adapter=setup.adapter_dir)


@pytest.fixture(scope="module")
def remote_pll(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp(f"serve-pll-{setup.kind}"), setup.adapter_dir, "on")
    yield server
    server.stop()


def test_pll_noise_in_process(setup: Setup, pll_client: helora.Client) -> None:
    check_noise(setup, pll_client)


def test_pll_noise_remote(setup: Setup, remote_pll: Server) -> None:
    check_noise(setup, remote_pll.client())


def test_pll_off_deltas_are_within_the_bound(setup: Setup, plain_client: helora.Client) -> None:
    """The same entries with the PLL off: each within bounds.py's ε."""
    assert plain_client.pll["noise"] == 0.0 and not plain_client.pll["flooding"]
    inputs = captured_inputs(setup)
    worst = 0.0
    for name, module in peft_sites(setup.peft).items():
        key = (layer_of(name), name.rsplit(".", 1)[-1])
        a, b, scaling = lora_factors(module)
        x = inputs[key]
        (delta,) = plain_client.deltas(key[0], [key[1]], x)
        exact = scaling * (x.astype(np.float64) @ a.T) @ b.T
        bound_log2 = next(
            p["bound_log2"] for p in plain_client.manifest if (p["layer"], p["module"]) == key
        )
        eps = delta_bound(x, exact, scaling * a.T @ b.T, bound_log2, x_is_f32=True)
        worst = max(worst, float((np.abs(delta - exact) / eps).max()))
    print(f"\n{setup.kind}: worst |δ − exact|/ε {worst:.3f} (σ_slot {slot_std():.2e})")
    assert worst <= 1.0
