"""Fixtures of the Python tests: tiny random transformers models made here (no download),
random PEFT LoRA adapters on them (non-zero B), in-process clients, and a `helora serve`
process over loopback on a fresh SQLite state."""

from __future__ import annotations

import copy
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

import helora

KINDS = ["llama", "qwen2"]
# Projections with each input shape the engine lays out differently: attention inputs
# (q, v), the attention output (o) and the MLP's down projection (d_in = intermediate).
TARGETS = ["q_proj", "v_proj", "o_proj", "down_proj"]
RANK = 4
ALPHA = 8


def tiny_model(kind: str, seed: int = 0) -> PreTrainedModel:
    """A 2-layer random model of `kind` in float32. A wide initializer gives decisive greedy
    choices (random logits far apart), so that agreement tests the deltas, not ties."""
    shape = dict(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,
        tie_word_embeddings=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    if kind == "llama":
        model: PreTrainedModel = LlamaForCausalLM(LlamaConfig(**shape))
    elif kind == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(use_sliding_window=False, **shape))
    else:
        raise ValueError(kind)
    return model.eval()


def peft_model(base: PreTrainedModel, seed: int = 1) -> PeftModel:
    """A PEFT LoRA over a copy of `base` with random A and B (B non-zero: the adapter changes
    the model's answers)."""
    torch.manual_seed(seed)
    config = LoraConfig(
        r=RANK,
        lora_alpha=ALPHA,
        target_modules=TARGETS,
        lora_dropout=0.0,
        init_lora_weights=False,
    )
    return get_peft_model(copy.deepcopy(base), config).eval()


@dataclass
class Setup:
    """A base model, the same model with the PEFT adapter in plaintext, and the adapter's
    directory (what a helora server holds)."""

    kind: str
    base: PreTrainedModel
    peft: PeftModel
    adapter_dir: Path


@pytest.fixture(scope="session", params=KINDS)
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Setup:
    kind = request.param
    base = tiny_model(kind)
    peft = peft_model(base)
    adapter_dir = tmp_path_factory.mktemp(f"adapter-{kind}")
    peft.save_pretrained(adapter_dir)
    return Setup(kind, base, peft, adapter_dir)


@pytest.fixture(scope="session")
def plain_client(setup: Setup) -> helora.Client:
    """An in-process server on the adapter with the PLL off, and its client."""
    return helora.Client(in_process_adapter=setup.adapter_dir, pll=False)


def helora_binary() -> str:
    binary = os.environ.get("HELORA_BIN")
    if not binary:
        pytest.fail("HELORA_BIN is not set: run the tests with scripts/python-test.sh")
    return binary


class Server:
    """A `helora serve` process over loopback on a fresh state, with one client issued."""

    def __init__(self, root: Path, adapter_dir: Path, pll: str) -> None:
        self.state = f"sqlite:{root / 'state.sqlite'}"
        self.key_dir = root / "client-keys"
        added = subprocess.run(
            [helora_binary(), "clients", "add", "pytest", "--state", self.state],
            check=True,
            capture_output=True,
            text=True,
        )
        # `clients add` prints the token once, as its last line.
        self.token = added.stdout.strip().splitlines()[-1]
        self.log = root / "serve.log"
        self.process = subprocess.Popen(
            [
                helora_binary(),
                "serve",
                "--state",
                self.state,
                f"--adapter=tiny={adapter_dir}",
                "--pll",
                pll,
                "--listen",
                "127.0.0.1:0",
            ],
            stdout=subprocess.PIPE,
            stderr=self.log.open("w"),
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().strip()
        if not first.startswith("listening on "):
            self.process.kill()
            pytest.fail(f"helora serve printed {first!r}: {self.log.read_text()}")
        self.url = first.removeprefix("listening on ")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=self.process.stdout.read, daemon=True).start()

    def client(self) -> helora.Client:
        return helora.Client(server=self.url, token=self.token, key_dir=self.key_dir)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture(scope="session")
def remote_plain(setup: Setup, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`helora serve --pll off` on the adapter."""
    server = Server(tmp_path_factory.mktemp(f"serve-{setup.kind}"), setup.adapter_dir, "off")
    yield server
    server.stop()


def random_prompts(batch: int, length: int, seed: int) -> List[List[int]]:
    """`batch` prompts of token ids (3 … 95) of lengths length, length − 2, …"""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randint(3, 96, (length - 2 * k,), generator=generator).tolist() for k in range(batch)
    ]
