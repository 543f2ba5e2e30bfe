"""The HE steps of one LoRA projection, one call each, for timing (e.g. from a notebook).

    import numpy as np
    from helora import he

    he.parameters()                          # the CKKS parameter set
    server = he.Server(a, b, pll=False)      # a: [d_in, r], b: [r, d_out] float32
    client, keys = he.keygen(server)         # secret key + evaluation keys
    server.register(keys)
    request = client.encrypt(x)              # x: [d_in] float32
    reply = server.apply(request)            # the LoRA plan on the ciphertext
    delta = client.decrypt(request, reply)   # x·a·b, [d_out] float32

These are the engine's client and server roles on a one-projection adapter: what is timed
is what `helora generate` runs per projection and token.
"""

from helora._native import HeClient as Client
from helora._native import HeServer as Server
from helora._native import KeyUpload, Reply, Request, keygen, parameters

__all__ = ["Client", "KeyUpload", "Reply", "Request", "Server", "keygen", "parameters"]
