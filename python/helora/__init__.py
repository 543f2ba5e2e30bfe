"""helora: private LoRA inference with CKKS homomorphic encryption.

`helora.Client` is the user's side: it holds the CKKS secret key (which never leaves it)
and talks to a server that holds the private LoRA adapter, either a `helora serve` process
(`server=URL, token=...`) or an adapter directory served from this process
(`in_process_adapter=DIR`). `helora.torch.attach` puts a client under a PyTorch model;
`helora.he` exposes the HE steps for timing.
"""

from helora._native import Client, HeloraError, __version__

__all__ = ["Client", "HeloraError", "__version__"]
