"""Private LoRA under any PyTorch model (Hugging Face transformers or your own).

    import helora, helora.torch
    client = helora.Client(server="https://lora.example:50051", token="hlr_...")
    attachment = helora.torch.attach(model, client)
    model.generate(...)                     # unchanged; the adapter's deltas are added
    attachment.detach()                     # or helora.torch.detach(model)

`attach` registers a forward hook on every target projection: a `torch.nn.Linear` whose
name ends in a module the server adapts (`q_proj`, `v_proj`, ...) inside `layers.{L}`, the
rule PEFT's adapter files follow. The hook copies the projection's input to the host as
float32, has the client encrypt it, the server apply the LoRA factors on the ciphertext,
the client decrypt the delta, and adds the delta to the projection's output on the output's
device and dtype. Only ciphertexts leave the machine; the model, the prompt and the
secret key stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from helora._native import Client, HeloraError

# Where attach keeps its Attachment on the model, so that a second attach is refused and
# detach(model) finds it.
_ATTRIBUTE = "_helora_attachment"


@dataclass(frozen=True)
class Target:
    """One projection of the model whose LoRA delta the server computes."""

    name: str  # the module's qualified name in the model
    layer: int
    module: str  # the PEFT module name (the name's last part)
    d_in: int
    d_out: int


def layer_of(name: str) -> Optional[int]:
    """The L of the first `layers.{L}` in a module name (the adapter files' rule), or None."""
    parts = name.split(".")
    for part, following in zip(parts, parts[1:]):
        if part == "layers":
            return int(following) if following.isdigit() else None
    return None


def _find_targets(
    model: torch.nn.Module, client: Client, targets: Optional[Sequence[str]]
) -> List[Target]:
    """The model's projections matching the server's adapted ones, checked both ways."""
    adapted: Dict[Tuple[int, str], Dict[str, Any]] = {
        (p["layer"], p["module"]): p for p in client.manifest
    }
    served = sorted({module for _, module in adapted})
    wanted = served if targets is None else list(targets)
    if not wanted:
        raise HeloraError("targets is empty: name at least one adapted module")
    unknown = [t for t in wanted if t not in served]
    if unknown:
        raise HeloraError(
            f"the server adapts {', '.join(served)}; not {', '.join(unknown)}"
        )
    found: Dict[Tuple[int, str], Target] = {}
    for name, module in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        layer = layer_of(name)
        if short not in wanted or layer is None or not isinstance(module, torch.nn.Linear):
            continue
        shape = adapted.get((layer, short))
        if shape is None:
            continue  # a layer the adapter leaves alone
        key = (layer, short)
        if key in found:
            raise HeloraError(
                f"two modules are layer {layer} {short}: {found[key].name} and {name}"
            )
        if (module.in_features, module.out_features) != (shape["d_in"], shape["d_out"]):
            raise HeloraError(
                f"{name} is a {module.in_features} → {module.out_features} projection; the "
                f"server's layer {layer} {short} is {shape['d_in']} → {shape['d_out']}"
            )
        found[key] = Target(name, layer, short, shape["d_in"], shape["d_out"])
    missing = sorted(key for key in adapted if key[1] in wanted and key not in found)
    if missing:
        listed = ", ".join(f"layer {layer} {module}" for layer, module in missing[:5])
        raise HeloraError(
            f"the model has no torch.nn.Linear for the server's {listed}"
            f"{' …' if len(missing) > 5 else ''} (expected a name like "
            f"'…layers.{missing[0][0]}.….{missing[0][1]}')"
        )
    return sorted(found.values(), key=lambda t: (t.layer, t.name))


class Attachment:
    """The forward hooks of one `attach`: `detach()` (or leaving a `with` block) removes them."""

    def __init__(self, model: torch.nn.Module, client: Client, targets: List[Target]) -> None:
        self.model = model
        self.client = client
        self.targets = targets
        modules = dict(model.named_modules())
        self._handles = [
            modules[t.name].register_forward_hook(self._hook_for(t), with_kwargs=True)
            for t in targets
        ]

    def _hook_for(self, target: Target) -> Any:
        client = self.client

        def add_delta(
            module: torch.nn.Module,
            args: Tuple[Any, ...],
            kwargs: Dict[str, Any],
            output: torch.Tensor,
        ) -> torch.Tensor:
            x = args[0] if args else kwargs["input"]
            # The host copy that gets encrypted (a no-op view for a float32 CPU input).
            rows = x.detach().reshape(-1, target.d_in).to(device="cpu", dtype=torch.float32)
            (delta,) = client.deltas(target.layer, [target.module], rows.numpy())
            delta_t = torch.from_numpy(delta).to(device=output.device, dtype=output.dtype)
            return output + delta_t.reshape(*output.shape[:-1], target.d_out)

        return add_delta

    def detach(self) -> None:
        """Removes the hooks: the model is the base model again."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if getattr(self.model, _ATTRIBUTE, None) is self:
            delattr(self.model, _ATTRIBUTE)

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self) -> "Attachment":
        return self

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"helora.torch.Attachment({len(self.targets)} projections, {state})"


def attach(
    model: torch.nn.Module, client: Client, targets: Optional[Sequence[str]] = None
) -> Attachment:
    """Adds `client`'s private LoRA deltas to `model`'s target projections.

    `targets` are PEFT module names (e.g. `["q_proj", "v_proj"]`); by default every module
    the server adapts. Every projection the server adapts among them must exist in the model
    with the server's shape, or a `HeloraError` says which does not.
    """
    if getattr(model, _ATTRIBUTE, None) is not None:
        raise HeloraError("a helora client is attached to this model already: detach it first")
    attachment = Attachment(model, client, _find_targets(model, client, targets))
    setattr(model, _ATTRIBUTE, attachment)
    return attachment


def detach(model: torch.nn.Module) -> None:
    """Removes the helora hooks `attach` put on `model` (nothing if there are none)."""
    attachment = getattr(model, _ATTRIBUTE, None)
    if attachment is not None:
        attachment.detach()


__all__ = ["Attachment", "Target", "attach", "detach", "layer_of"]
