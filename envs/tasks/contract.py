"""The task contract: what a task family must satisfy, checked once when an env first builds a user's family.

Each rule is checked on one sampled instance; a broken rule raises :class:`TaskContractError` naming it, at
construction, instead of a traceback in the middle of an episode.

Rules:

- ``subclass``: the family subclasses ``TaskFamily`` and has string ``name`` and ``modality`` attributes;
- ``instance``: ``sample_instance`` returns an instance ``validate_instance`` accepts;
- ``data``: ``split`` gives train / validation / test tensors with as many labels as inputs (>= 1 row each),
  1-D int64 labels in ``[0, n_classes)``, ``n_classes >= 2``;
- ``finite``: every floating-point input is finite;
- ``model``: ``build_model`` returns an ``nn.Module`` whose ``model(x_val)`` is finite ``(B, n_classes)`` logits;
- ``hidden_layers``: ``hidden_layers(model)`` is a non-empty list of ``HiddenLayer`` whose weights are the
  model's parameters and whose activations have ``units`` entries on ``unit_dim``;
- ``augment``: ``augment(x, y, 1, generator)`` returns a batch of the same shapes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from traingym.envs.hidden_layer import HiddenLayer
from traingym.envs.tasks.base import TaskFamily


class TaskContractError(ValueError):
    """A task family breaks a rule of the task contract (the message names the rule)."""


def _fail(task: object, rule: str, detail: str) -> TaskContractError:
    name = getattr(task, "name", type(task).__name__)
    return TaskContractError(f"task family {name!r} breaks the task contract rule {rule!r}: {detail}")


def check_task_family(task: TaskFamily, val_size: int = 512) -> None:
    """Check ``task`` against every rule (see the module docstring); raises :class:`TaskContractError`."""
    if not isinstance(task, TaskFamily):
        raise _fail(task, "subclass", f"{type(task).__name__} does not subclass TaskFamily")
    for attr in ("name", "modality"):
        if not isinstance(getattr(task, attr, None), str):
            raise _fail(task, "subclass", f"class attribute {attr!r} must be a string")
    try:
        instance = task.sample_instance(np.random.default_rng(0), "sgd", 0)
        task.validate_instance(instance)
    except (ValueError, KeyError, TypeError) as error:
        raise _fail(task, "instance", f"sample_instance / validate_instance failed: {error}") from error
    split = task.split(instance, val_size)
    n = split.n_classes
    if not isinstance(n, int) or n < 2:
        raise _fail(task, "data", f"n_classes must be an int >= 2, got {n!r}")
    for part in ("train", "val", "test"):
        x, y = getattr(split, f"x_{part}"), getattr(split, f"y_{part}")
        if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
            raise _fail(task, "data", f"x_{part} and y_{part} must be tensors")
        if x.shape[0] != y.shape[0] or x.shape[0] < 1:
            raise _fail(task, "data", f"x_{part} has {x.shape[0]} rows but y_{part} has {y.shape[0]} labels "
                                      "(need the same number, >= 1)")
        if y.dim() != 1 or y.dtype != torch.int64:
            raise _fail(task, "data", f"y_{part} must be a 1-D int64 tensor of class ids, got {y.dtype} "
                                      f"{tuple(y.shape)}")
        if int(y.min()) < 0 or int(y.max()) >= n:
            raise _fail(task, "data", f"y_{part} holds labels outside [0, {n - 1}]")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise _fail(task, "finite", f"x_{part} holds NaN or infinite values")
    try:
        model = task.build_model(instance, n, torch.Generator().manual_seed(0))
    except Exception as error:  # the family's own code: report it under the rule it breaks
        raise _fail(task, "model", f"build_model raised {type(error).__name__}: {error}") from error
    if not isinstance(model, nn.Module):
        raise _fail(task, "model", f"build_model must return an nn.Module, got {type(model).__name__}")
    try:
        layers = task.hidden_layers(model)
    except Exception as error:
        raise _fail(task, "hidden_layers", f"hidden_layers(model) raised {type(error).__name__}: {error}") from error
    if not layers or not all(isinstance(layer, HiddenLayer) for layer in layers):
        raise _fail(task, "hidden_layers", "hidden_layers(model) must return a non-empty list of HiddenLayer")
    params = {id(p) for p in model.parameters()}
    for layer in layers:
        if id(layer.weight) not in params:
            raise _fail(task, "hidden_layers", f"layer {layer.name!r}: its weight is not a parameter of the model")
    captured: dict[int, torch.Tensor] = {}
    handles = [layer.module.register_forward_hook(lambda m, i, o, k=k: captured.__setitem__(k, o))
               for k, layer in enumerate(layers)]
    try:
        model.eval()
        with torch.no_grad():
            logits = model(split.x_val[:4])
    except Exception as error:
        raise _fail(task, "model", f"model(x_val[:4]) raised {type(error).__name__}: {error}") from error
    finally:
        for handle in handles:
            handle.remove()
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (min(4, split.x_val.shape[0]), n):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise _fail(task, "model", f"model(x_val[:4]) must be logits of shape ({min(4, split.x_val.shape[0])}, {n}), "
                                   f"got {shape}")
    if not bool(torch.isfinite(logits).all()):
        raise _fail(task, "model", "the freshly built model returns non-finite logits")
    for k, layer in enumerate(layers):
        act = captured.get(k)
        if not isinstance(act, torch.Tensor) or act.dim() < 2 or act.shape[layer.unit_dim] != layer.units:
            shape = tuple(act.shape) if isinstance(act, torch.Tensor) else None
            raise _fail(task, "hidden_layers", f"layer {layer.name!r}: the module's output {shape} must have "
                                               f"{layer.units} units (rows of its weight) on dim {layer.unit_dim}")
    xb, yb = split.x_train[:4], split.y_train[:4]
    xa, ya = task.augment(xb, yb, 1, torch.Generator().manual_seed(0))
    if tuple(xa.shape) != tuple(xb.shape) or tuple(ya.shape) != tuple(yb.shape):
        raise _fail(task, "augment", f"augment changed the batch shapes {tuple(xb.shape)}/{tuple(yb.shape)} to "
                                     f"{tuple(xa.shape)}/{tuple(ya.shape)}")
