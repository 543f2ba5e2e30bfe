"""A model on CUDA: its activations are copied to the host for encryption and the deltas
added on the device; the same tokens as PEFT on the same device. Without a GPU the test is
skipped with a message, unless HELORA_REQUIRE_GPU=1 makes that a failure."""

from __future__ import annotations

import copy
import os

import pytest
import torch

import helora
import helora.torch
from conftest import Setup, random_prompts
from test_generate import greedy


def test_cuda_model(setup: Setup, plain_client: helora.Client) -> None:
    if not torch.cuda.is_available():
        if os.environ.get("HELORA_REQUIRE_GPU") == "1":
            pytest.fail("HELORA_REQUIRE_GPU=1 but torch sees no CUDA device")
        pytest.skip("no CUDA device: the CUDA tensor path is not tested on this machine")
    base = copy.deepcopy(setup.base).to("cuda")
    peft = copy.deepcopy(setup.peft).to("cuda")
    prompts = random_prompts(2, 10, seed=3)
    reference = greedy(peft, prompts)
    with helora.torch.attach(base, plain_client):
        secure = greedy(base, prompts)
    assert secure.device.type == "cuda"
    assert torch.equal(secure, reference)
