"""Finding the hidden layers of a user's model: the units the neuron log watches and neuron scaling moves.

Found automatically (:func:`find_hidden_layers`):

- transformer FFNs: every module with an ``intermediate.dense`` ``nn.Linear`` (BERT-style encoder layers; the
  intermediate module's output, after the activation, holds the units: ``unit_dim=-1``); when a model has any,
  only these are used (attention projections are not units);
- otherwise every ``nn.Conv2d`` and ``nn.Linear`` except the last ``nn.Linear`` (the classifier head), in module
  order. The hook sits on the layer itself (its pre-activation output): for ReLU networks the dead-unit fraction
  (output <= 0) and the importance ``|a * g|`` on the errors are the same as on the activation.

Or named by the user: ``hidden_layers=["features.0", "fc1"]`` (module names as in ``model.named_modules()``; a name
may point at an FFN block with an ``intermediate.dense``, or at a Linear / Conv2d), or ready
:class:`~traingym.envs.hidden_layer.HiddenLayer` objects.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from traingym.envs.hidden_layer import HiddenLayer


def find_hidden_layers(model: nn.Module, names: Sequence[str | HiddenLayer] | None = None) -> list[HiddenLayer]:
    """The hidden layers of ``model`` (automatically, or the named ones); raises ValueError when there are none."""
    if names is not None:
        modules = dict(model.named_modules())
        layers = []
        for name in names:
            if isinstance(name, HiddenLayer):
                layers.append(name)
                continue
            if name not in modules:
                raise ValueError(f"hidden_layers: the model has no module named {name!r}")
            layer = _as_hidden_layer(name, modules[name])
            if layer is None:
                raise ValueError(f"hidden_layers: module {name!r} is a {type(modules[name]).__name__}; name an "
                                 "nn.Linear, an nn.Conv2d or a transformer FFN block (with intermediate.dense)")
            layers.append(layer)
        if not layers:
            raise ValueError("hidden_layers is empty: name at least one Linear / Conv2d / FFN module, or pass None")
        return layers
    ffns = [HiddenLayer(f"{name}.ffn" if name else "ffn", m.intermediate, m.intermediate.dense.weight,
                        m.intermediate.dense.bias, unit_dim=-1)
            for name, m in model.named_modules() if _is_ffn_block(m)]
    if ffns:
        return ffns
    candidates = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    last_linear = max((i for i, (_, m) in enumerate(candidates) if isinstance(m, nn.Linear)), default=None)
    layers = [HiddenLayer(name, m, m.weight, m.bias) for i, (name, m) in enumerate(candidates) if i != last_linear]
    if not layers:
        raise ValueError(f"no hidden layers found in {type(model).__name__}: the doctor watches nn.Linear (all but "
                         "the last), nn.Conv2d and transformer FFN layers; name them with hidden_layers=[...]")
    return layers


def _is_ffn_block(module: nn.Module) -> bool:
    intermediate = getattr(module, "intermediate", None)
    return isinstance(intermediate, nn.Module) and isinstance(getattr(intermediate, "dense", None), nn.Linear)


def _as_hidden_layer(name: str, module: nn.Module) -> HiddenLayer | None:
    if _is_ffn_block(module):
        dense = module.intermediate.dense  # type: ignore[union-attr]
        return HiddenLayer(f"{name}.ffn", module.intermediate, dense.weight, dense.bias, unit_dim=-1)  # type: ignore
    if isinstance(module, (nn.Linear, nn.Conv2d)):
        return HiddenLayer(name, module, module.weight, module.bias)
    return None
