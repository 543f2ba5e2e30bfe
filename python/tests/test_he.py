"""The HE steps from Python (helora.he): parameters, keygen, encrypt, the LoRA apply and
decrypt, against x·a·b within bounds.py's ε; bad factors and inputs refused."""

from __future__ import annotations

import numpy as np
import pytest

import helora
from bounds import delta_bound
from helora import he


def test_parameters_are_the_engines() -> None:
    p = he.parameters()
    assert p["n"] == 8192 and p["slots"] == 4096 and p["max_level"] == 2
    assert p["log_scale"] == 50 and p["q_bits"] == [60, 50, 50] and p["p_bits"] == [58]
    assert p["reply_bits"] == (36, 40)


@pytest.mark.parametrize("pll", [False, True])
def test_one_projection_round_trip(pll: bool) -> None:
    rng = np.random.default_rng(5)
    d_in, rank, d_out = 256, 8, 128
    a = rng.uniform(-0.2, 0.2, (d_in, rank)).astype(np.float32)
    b = rng.uniform(-0.1, 0.1, (rank, d_out)).astype(np.float32)
    server = he.Server(a, b, pll=pll)
    client, keys = he.keygen(server)
    assert keys.nbytes > 0
    server.register(keys)
    x = rng.uniform(-1, 1, d_in).astype(np.float32)
    request = client.encrypt(x)
    reply = server.apply(request)
    assert request.nbytes > 0 and reply.nbytes > 0
    delta = client.decrypt(request, reply)
    exact = x.astype(np.float64) @ a.astype(np.float64) @ b.astype(np.float64)
    if pll:
        # σ = 0.1 of the delta, relative: far from exact, but of its size.
        relative = np.linalg.norm(delta - exact) / np.linalg.norm(exact)
        assert 0.01 < relative < 0.5, relative
    else:
        # The client makes no shift here (‖x‖·g < 2^7 for these factors and x): the
        # exponent passed only has to keep that so.
        eps = delta_bound(x[None, :], exact[None, :], a.astype(np.float64) @ b, 1, x_is_f32=True)
        assert np.all(np.abs(delta - exact) <= eps[0])


def test_bad_factors_and_inputs_are_refused() -> None:
    a = np.ones((16, 4), np.float32)
    b = np.ones((4, 8), np.float32)
    with pytest.raises(helora.HeloraError, match="columns and b"):
        he.Server(a, np.ones((3, 8), np.float32))
    bad = a.copy()
    bad[2, 1] = np.inf
    with pytest.raises(helora.HeloraError, match=r"entry \(2, 1\) is inf"):
        he.Server(bad, b)
    with pytest.raises(helora.HeloraError, match="float32"):
        he.Server(a.astype(np.float64), b)
    server = he.Server(a, b)
    client, keys = he.keygen(server)
    with pytest.raises(helora.HeloraError, match="takes 16"):
        client.encrypt(np.ones(15, np.float32))
    request = client.encrypt(np.ones(16, np.float32))
    # Not registered yet: the server refuses the request.
    with pytest.raises(helora.HeloraError):
        server.apply(request)
    server.register(keys)
    with pytest.raises(helora.HeloraError):
        server.register(keys)
    delta = client.decrypt(request, server.apply(request))
    assert np.allclose(delta, 16 * 4, rtol=1e-4)
