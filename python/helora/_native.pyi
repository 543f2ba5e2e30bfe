"""Type stubs of helora's Rust module (python/src/)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

class HeloraError(Exception):
    """An error from helora: bad input, a refused request, a broken connection."""

class Client:
    """The user's side of private LoRA: the CKKS secret key and a server.

    Exactly one of `server` (a `helora serve` URL, with `token`) and `in_process_adapter`
    (a PEFT adapter directory served from this process; `pll` on by default).
    """

    def __init__(
        self,
        server: Optional[str] = None,
        *,
        token: Optional[str] = None,
        in_process_adapter: Optional[Union[str, PathLike[str]]] = None,
        pll: Optional[bool] = None,
        adapter: Optional[str] = None,
        key_dir: Optional[Union[str, PathLike[str]]] = None,
        ca_cert: Optional[Union[str, PathLike[str]]] = None,
        retries: int = 5,
    ) -> None: ...
    def deltas(
        self, layer: int, modules: Sequence[str], x: npt.NDArray[np.float32]
    ) -> List[npt.NDArray[np.float32]]:
        """The decrypted deltas of `modules` of `layer` for `x` ([tokens, d_in]), one
        [tokens, d_out] array per module."""
    @property
    def manifest(self) -> List[Dict[str, Any]]: ...
    @property
    def pll(self) -> Dict[str, Any]: ...
    @property
    def remote(self) -> bool: ...
    @property
    def stats(self) -> Dict[str, Any]: ...

def parameters() -> Dict[str, Any]: ...

class HeServer:
    def __init__(
        self, a: npt.NDArray[np.float32], b: npt.NDArray[np.float32], *, pll: bool = False
    ) -> None: ...
    def register(self, keys: KeyUpload) -> None: ...
    def apply(self, request: Request) -> Reply: ...

class HeClient:
    def encrypt(self, x: npt.NDArray[np.float32]) -> Request: ...
    def decrypt(self, request: Request, reply: Reply) -> npt.NDArray[np.float32]: ...

class KeyUpload:
    @property
    def nbytes(self) -> int: ...

class Request:
    @property
    def nbytes(self) -> int: ...

class Reply:
    @property
    def nbytes(self) -> int: ...

def keygen(server: HeServer) -> Tuple[HeClient, KeyUpload]: ...
