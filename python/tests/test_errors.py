"""Bad input gets a `helora.HeloraError` that says what is wrong, never a crash: client
arguments, adapters, activations, models that do not fit the adapter, an unreachable
server, a bad token and an exhausted budget."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import helora
import helora.torch
from bounds import TAIL, slot_std
from conftest import Server, Setup, helora_binary, tiny_model


def refused(match: str, call, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(helora.HeloraError, match=match):
        call(*args, **kwargs)


def test_client_arguments_are_checked(setup: Setup, tmp_path: Path) -> None:
    refused("exactly one of server=", helora.Client)
    refused("exactly one", helora.Client, "http://127.0.0.1:1", in_process_adapter=setup.adapter_dir)
    refused("needs token=", helora.Client, "http://127.0.0.1:1")
    refused("not\\s+in_process_adapter", helora.Client, in_process_adapter=setup.adapter_dir, token="x")
    refused("helora serve --pll", helora.Client, "http://127.0.0.1:1", token="x", pll=False)
    refused("missing does not exist", helora.Client, in_process_adapter=tmp_path / "missing")
    # An adapter the engine refuses (DoRA), with its file named.
    dora = tmp_path / "dora"
    shutil.copytree(setup.adapter_dir, dora)
    config = json.loads((dora / "adapter_config.json").read_text())
    config["use_dora"] = True
    (dora / "adapter_config.json").write_text(json.dumps(config))
    refused("DoRA", helora.Client, in_process_adapter=dora)


def test_remote_failures_are_errors(setup: Setup, remote_plain: Server, tmp_path: Path) -> None:
    refused("malformed", helora.Client, remote_plain.url, token="hlr_nothex", key_dir=tmp_path)
    unknown = "hlr_" + "0" * 64
    refused("Unauthenticated", helora.Client, remote_plain.url, token=unknown, key_dir=tmp_path)
    refused("connecting", helora.Client, "http://127.0.0.1:1", token=unknown, key_dir=tmp_path)


def test_an_exhausted_budget_is_an_error(setup: Setup, remote_plain: Server, tmp_path: Path) -> None:
    added = subprocess.run(
        [helora_binary(), "clients", "add", "small", "--budget", "2", "--state", remote_plain.state],
        check=True,
        capture_output=True,
        text=True,
    )
    token = added.stdout.strip().splitlines()[-1]
    client = helora.Client(remote_plain.url, token=token, key_dir=tmp_path)
    shape = client.manifest[0]
    x = np.ones((3, shape["d_in"]), dtype=np.float32)
    refused("ResourceExhausted", client.deltas, shape["layer"], [shape["module"]], x)


def test_activations_are_checked(plain_client: helora.Client) -> None:
    shape = plain_client.manifest[0]
    layer, module, d_in = shape["layer"], shape["module"], shape["d_in"]
    good = np.zeros((2, d_in), dtype=np.float32)
    refused("columns", plain_client.deltas, layer, [module], np.zeros((2, d_in + 1), np.float32))
    refused("float32", plain_client.deltas, layer, [module], good.astype(np.float64))
    refused("2-D", plain_client.deltas, layer, [module], np.zeros(d_in, np.float32))
    refused("float32", plain_client.deltas, layer, [module], [[1.0] * d_in])
    refused("does not adapt layer 99", plain_client.deltas, 99, [module], good)
    refused("does not adapt", plain_client.deltas, layer, ["lm_head"], good)
    refused("no module", plain_client.deltas, layer, [], good)
    nan = good.copy()
    nan[1, 3] = np.nan
    refused("not finite", plain_client.deltas, layer, [module], nan)
    # Zero tokens: no request, empty deltas of the right width.
    (empty,) = plain_client.deltas(layer, [module], np.zeros((0, d_in), np.float32))
    assert empty.shape == (0, shape["d_out"])
    # And the client still works: a zero input's delta is zero up to CKKS noise.
    (delta,) = plain_client.deltas(layer, [module], good)
    assert delta.shape == (2, shape["d_out"]) and np.all(np.abs(delta) <= TAIL * slot_std())


def test_attach_checks_the_model(setup: Setup, plain_client: helora.Client) -> None:
    refused("not lm_head", helora.torch.attach, setup.base, plain_client, targets=["lm_head"])
    refused("targets is empty", helora.torch.attach, setup.base, plain_client, targets=[])
    # A model whose projections have other shapes than the adapter's.
    wider = tiny_model(setup.kind)
    wider.model.layers[1].self_attn.o_proj = torch.nn.Linear(64, 80, bias=False)
    refused("o_proj is a 64 → 80 projection", helora.torch.attach, wider, plain_client)
    # A model with fewer layers than the adapter adapts.
    shallow = copy.deepcopy(setup.base)
    del shallow.model.layers[1]
    refused("no torch.nn.Linear for the server's layer 1", helora.torch.attach, shallow, plain_client)
    # Attached twice: refused; detached, attachable again.
    attachment = helora.torch.attach(setup.base, plain_client, targets=["q_proj"])
    try:
        assert [t.module for t in attachment.targets] == ["q_proj", "q_proj"]
        refused("attached to this model already", helora.torch.attach, setup.base, plain_client)
    finally:
        helora.torch.detach(setup.base)
    assert not attachment.attached
    helora.torch.attach(setup.base, plain_client).detach()
