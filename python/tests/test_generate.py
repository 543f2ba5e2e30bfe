"""`model.generate()` with helora attached (PLL off) against the PEFT adapter in plaintext:
the same greedy tokens for batches of 1 and 2, and logits within the first-order bound of
bounds.py, in process and against `helora serve`."""

from __future__ import annotations

import copy
from typing import List

import pytest
import torch

import helora
import helora.torch
from bounds import logits_with_first_order_bound
from conftest import Server, Setup, random_prompts

NEW_TOKENS = 8


def greedy(model: torch.nn.Module, prompts: List[List[int]]) -> torch.Tensor:
    """Greedy continuations of `prompts` (left-padded into one batch): [batch, NEW_TOKENS]."""
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts], device=model.device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=model.device)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=NEW_TOKENS,
            min_new_tokens=NEW_TOKENS,
            do_sample=False,
            pad_token_id=0,
        )
    return out[:, width:]


def check_same_tokens(setup: Setup, client: helora.Client, batch: int) -> None:
    prompts = random_prompts(batch, 10, seed=batch)
    reference = greedy(setup.peft, prompts)
    base = greedy(setup.base, prompts)
    # The adapter changes the answer: agreement below is the deltas' doing.
    assert not torch.equal(reference, base), "the adapter does not change the tokens"
    requests = client.stats["requests"]
    with helora.torch.attach(setup.base, client) as attachment:
        assert len(attachment.targets) == len(client.manifest)
        secure = greedy(setup.base, prompts)
    assert torch.equal(secure, reference), f"helora {secure.tolist()} vs PEFT {reference.tolist()}"
    assert client.stats["requests"] > requests
    # Detached, the model is the base model again.
    assert torch.equal(greedy(setup.base, prompts), base)


@pytest.mark.parametrize("batch", [1, 2])
def test_greedy_tokens_match_peft_in_process(
    setup: Setup, plain_client: helora.Client, batch: int
) -> None:
    check_same_tokens(setup, plain_client, batch)


@pytest.mark.parametrize("batch", [1, 2])
def test_greedy_tokens_match_peft_remote(setup: Setup, remote_plain: Server, batch: int) -> None:
    client = remote_plain.client()
    assert client.remote
    check_same_tokens(setup, client, batch)
    assert client.stats["upload_bytes"] > 0 and "network_s" in client.stats


def test_logits_within_the_documented_bound(setup: Setup, plain_client: helora.Client) -> None:
    """In float64 (so that the only difference is the deltas'), the logits of every step of
    a greedy generation agree within Σ|∂logit/∂δ|·ε (bounds.py, docs/python.md)."""
    base, peft = copy.deepcopy(setup.base).double(), copy.deepcopy(setup.peft).double()
    prompt = random_prompts(1, 10, seed=7)[0]
    tokens = greedy(peft, [prompt])[0].tolist()
    ids = torch.tensor([prompt + tokens])
    # The logits that chose each generated token.
    positions = list(range(len(prompt) - 1, len(prompt) + len(tokens) - 1))
    reference, bound = logits_with_first_order_bound(peft, ids, positions, plain_client.manifest)
    with helora.torch.attach(base, plain_client), torch.no_grad():
        secure = base(input_ids=ids).logits[0, positions]
    difference = (secure - reference).abs()
    ratio = float((difference / bound).max())
    print(
        f"\n{setup.kind}: max |Δlogit| {float(difference.max()):.3e}, bound "
        f"{float(bound.min()):.3e} … {float(bound.max()):.3e}, worst ratio {ratio:.3f}"
    )
    assert torch.all(difference <= bound), f"max |Δlogit|/bound = {ratio}"
    # The deltas moved the logits: without them the difference is far beyond the bound.
    with torch.no_grad():
        plain = base(input_ids=ids).logits[0, positions]
    assert torch.any((plain - reference).abs() > 100 * bound)
