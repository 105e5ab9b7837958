"""N MLPs of different depth and width trained as one batched computation (stacked, zero-padded parameters).

Tiny target networks spend their training time in per-op framework overhead, not in arithmetic, so N instances
are stacked into tensors ``(N, out, in)`` and every training step is a handful of ``baddbmm`` calls for all N.

Padding is exact, not approximate:

- Padded hidden units have zero incoming weights, zero bias and zero outgoing weights: their pre-activation is 0,
  ``relu(0) = 0`` and PyTorch's ``relu'(0) = 0``, so every gradient they receive or send is exactly 0 and they stay
  0 under SGD with momentum and AdamW (weight decay of 0 is 0).
- Padded input features are zero in the data and have zero weights (same argument).
- A missing hidden layer (an instance shallower than the stack) is an identity layer, ``W = I``, ``b = 0``, placed
  after the instance's real layers: its input is post-ReLU, so ``relu(I h) = h`` exactly, and gradients pass
  through it unchanged. It is frozen by a zero learning rate (which also zeroes AdamW's decoupled decay factor's
  effect: ``1 - 0 * wd = 1``).
- Padded classes get a ``-inf`` logit: zero probability, zero gradient, never the argmax.

The optimizer update is written out (torch.optim takes one scalar learning rate per parameter group; here every
instance has its own learning rate and weight decay, as ``(N, 1, 1)`` tensors). It follows torch's single-tensor
``SGD`` (momentum, no dampening, weight decay added to the gradient, weights only) and ``AdamW`` (decoupled weight
decay on weights only, default betas and eps) formulas, as the env configures its optimizer (two parameter
groups: weight decay on weight matrices only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from traingym.envs.tasks.networks import MLP

ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
"""torch.optim.AdamW defaults, which ``TrainingEnv`` uses."""


class StackedMLP:
    """Parameters and optimizer state of ``n`` :class:`MLP` s, padded to a common shape that grows on demand.

    Between env steps each instance's own ``nn.Module`` is the source of truth (validation, the neuron log and
    flagged-neuron scaling use it): :meth:`load` copies a module in, :meth:`store` copies parameters and the
    last step's gradients back out. Optimizer state lives here and persists across env steps.
    """

    def __init__(self, n: int, optimizer: str, momentum: float, device: torch.device) -> None:
        if optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
        self.n, self.optimizer, self.momentum, self.device = n, optimizer, momentum, device
        self.depth = self.width = self.n_in = self.n_out = 0
        self.weights: list[torch.Tensor] = []
        """Hidden layers then the head, each ``(n, out, in)``."""
        self.biases: list[torch.Tensor] = []
        """``(n, out)`` per layer."""
        self.state: list[list[torch.Tensor]] = []
        """Per parameter (weights then biases): ``[momentum]`` (SGD) or ``[exp_avg, exp_avg_sq]`` (AdamW)."""
        self.active = torch.zeros((n, 0), dtype=torch.float32)
        """``(n, layers)`` 1.0 where the layer is one of the instance's own (identity layers: 0.0)."""
        self.logit_mask = torch.zeros((n, 0), device=device)
        self.steps = np.zeros(n, dtype=np.int64)
        """Optimizer steps per instance (AdamW bias correction)."""
        self.shapes: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * n
        """Per instance: depth, width, inputs, classes."""
        self.grads: list[torch.Tensor] = []

    # ------------------------------------------------------------------ layout
    @property
    def params(self) -> list[torch.Tensor]:
        return [*self.weights, *self.biases]

    def _grow(self, depth: int, width: int, n_in: int, n_out: int) -> None:
        """Pad every tensor to at least this shape (new hidden layers are identity layers for every instance)."""
        depth, width = max(depth, self.depth), max(width, self.width)
        n_in, n_out = max(n_in, self.n_in), max(n_out, self.n_out)
        if (depth, width, n_in, n_out) == (self.depth, self.width, self.n_in, self.n_out):
            return
        n, dev = self.n, self.device
        old_w, old_b, old_state = self.weights, self.biases, self.state
        old_depth = self.depth
        n_state = 1 if self.optimizer == "sgd" else 2
        weights, biases = [], []
        for j in range(depth):
            w = torch.zeros((n, width, n_in if j == 0 else width), device=dev)
            if j < old_depth:
                _copy_padded(w, old_w[j])
            elif j > 0:  # identity layer
                w[:, torch.arange(width), torch.arange(width)] = 1.0
            weights.append(w)
            b = torch.zeros((n, width), device=dev)
            if j < old_depth:
                _copy_padded(b, old_b[j])
            biases.append(b)
        head_w, head_b = torch.zeros((n, n_out, width), device=dev), torch.zeros((n, n_out), device=dev)
        if old_depth:
            _copy_padded(head_w, old_w[-1])
            _copy_padded(head_b, old_b[-1])
        self.weights, self.biases = [*weights, head_w], [*biases, head_b]
        old_index = {**{j: j for j in range(old_depth)}, depth: old_depth}  # new layer -> old layer (head moves)
        state = []
        for p_index, param in enumerate(self.params):
            layer, is_bias = p_index % (depth + 1), p_index > depth
            entry = [torch.zeros_like(param) for _ in range(n_state)]
            if old_depth and layer in old_index:
                old_p = old_index[layer] + (old_depth + 1 if is_bias else 0)
                for new, old in zip(entry, old_state[old_p]):
                    _copy_padded(new, old)
            state.append(entry)
        self.state = state
        active = torch.zeros((n, depth + 1))
        active[:, depth] = 1.0
        if old_depth:
            active[:, :old_depth] = self.active[:, :old_depth]
        self.active = active
        mask = torch.full((n, n_out), -math.inf, device=dev)
        for i, (_, _, _, classes) in enumerate(self.shapes):
            mask[i, :classes] = 0.0
        self.logit_mask = mask
        self.depth, self.width, self.n_in, self.n_out = depth, width, n_in, n_out

    # ------------------------------------------------------------------ rows
    @torch.no_grad()
    def add_row(self) -> int:
        """Append an empty slot (load a model into it next); returns its index."""
        self.n += 1
        self.shapes.append((0, 0, 0, 0))
        self.steps = np.append(self.steps, 0)
        self.weights = [torch.cat([w, torch.zeros_like(w[:1])]) for w in self.weights]
        for j in range(1, self.depth):  # hidden layers past the first start as identity layers
            self.weights[j][-1].copy_(torch.eye(self.width, device=self.device))
        self.biases = [torch.cat([b, torch.zeros_like(b[:1])]) for b in self.biases]
        self.state = [[torch.cat([t, torch.zeros_like(t[:1])]) for t in entry] for entry in self.state]
        row = torch.zeros((1, self.active.shape[1]))
        if self.depth:
            row[0, -1] = 1.0
        self.active = torch.cat([self.active, row])
        self.logit_mask = torch.cat([self.logit_mask, torch.full_like(self.logit_mask[:1], -math.inf)])
        return self.n - 1

    def remove_row(self, row: int) -> None:
        """Drop slot ``row`` (later slots move up by one)."""
        keep = [r for r in range(self.n) if r != row]
        index = torch.tensor(keep, dtype=torch.int64, device=self.device)
        self.n -= 1
        del self.shapes[row]
        self.steps = self.steps[keep]
        self.weights = [w.index_select(0, index) for w in self.weights]
        self.biases = [b.index_select(0, index) for b in self.biases]
        self.state = [[t.index_select(0, index) for t in entry] for entry in self.state]
        self.active = self.active[keep]
        self.logit_mask = self.logit_mask.index_select(0, index)
        self.grads = []

    # ------------------------------------------------------------------ instances
    @torch.no_grad()
    def load(self, i: int, model: MLP, *, reset_state: bool) -> None:
        """Copy ``model``'s parameters into slot ``i`` (``reset_state``: a fresh optimizer, as after a reset)."""
        if not isinstance(model, MLP) or len(model.linears) == 0:
            raise TypeError(f"StackedMLP trains MLPs with at least one hidden layer, got {type(model).__name__}")
        depth, width = len(model.linears), max(lin.out_features for lin in model.linears)
        n_in, n_out = model.linears[0].in_features, model.head.out_features
        self.shapes[i] = (depth, width, n_in, n_out)
        self._grow(depth, width, n_in, n_out)
        layers = [*model.linears, model.head]
        for j in range(self.depth):
            w, b = self.weights[j][i], self.biases[j][i]
            if j < depth:
                w.zero_()
                b.zero_()
                w[: layers[j].out_features, : layers[j].in_features] = layers[j].weight
                b[: layers[j].out_features] = layers[j].bias
            else:  # identity layer
                w.copy_(torch.eye(self.width, device=self.device))
                b.zero_()
        head_w, head_b = self.weights[-1][i], self.biases[-1][i]
        head_w.zero_()
        head_b.zero_()
        head_w[:n_out, : model.head.in_features] = model.head.weight
        head_b[:n_out] = model.head.bias
        self.active[i, : self.depth] = (torch.arange(self.depth) < depth).float()
        self.logit_mask[i] = -math.inf
        self.logit_mask[i, :n_out] = 0.0
        if reset_state:
            for entry in self.state:
                for tensor in entry:
                    tensor[i].zero_()
            self.steps[i] = 0

    @torch.no_grad()
    def store(self, i: int, model: MLP) -> None:
        """Copy slot ``i``'s parameters into ``model`` and the last training step's gradients into ``.grad``."""
        depth = len(model.linears)
        layers = [*model.linears, model.head]
        slots = [*range(depth), self.depth]
        for layer, j in zip(layers, slots):
            out_f, in_f = layer.weight.shape
            layer.weight.copy_(self.weights[j][i, :out_f, :in_f])
            layer.bias.copy_(self.biases[j][i, :out_f])
            if self.grads:
                layer.weight.grad = self.grads[j][i, :out_f, :in_f].clone()
                layer.bias.grad = self.grads[self.depth + 1 + j][i, :out_f].clone()

    # ------------------------------------------------------------------ training
    def train(self, x: torch.Tensor, y: torch.Tensor, lr: Sequence[float], weight_decay: Sequence[float]
              ) -> torch.Tensor:
        """K optimizer steps of all instances on ``x`` ``(K, n, B, n_in)`` and ``y`` ``(K, n, B)``.

        Returns ``(3, n)``: mean training loss, training accuracy and global weight norm per instance (on the
        device, for the caller's single host copy).
        """
        k, n, b = y.shape
        dev, depth = self.device, self.depth
        lr64 = np.asarray(lr, dtype=np.float64)
        wd64 = np.asarray(weight_decay, dtype=np.float64)
        active = self.active.to(dev)
        # Per-layer learning rate: the instance's LR on its own layers, 0 on identity layers (frozen).
        lr_t = torch.as_tensor(lr64, dtype=torch.float32, device=dev)[:, None] * active  # (n, layers)
        wd_t = torch.as_tensor(wd64, dtype=torch.float32, device=dev)[:, None, None]
        w_lr = [lr_t[:, j, None, None] for j in range(depth + 1)]
        b_lr = [lr_t[:, j, None] for j in range(depth + 1)]
        if self.optimizer == "adam":
            steps = self.steps[None, :] + np.arange(1, k + 1)[:, None]  # (K, n)
            beta1, beta2 = ADAM_BETAS
            # Bias corrections in float64 on the host, as torch computes them (Python floats).
            step_size = torch.as_tensor(-lr64 / (1 - beta1**steps), dtype=torch.float32, device=dev)
            bc2_sqrt = torch.as_tensor(np.sqrt(1 - beta2**steps), dtype=torch.float32, device=dev)
            active_np = self.active.numpy()
            decay = torch.as_tensor(1 - lr64[:, None] * wd64[:, None] * active_np, dtype=torch.float32,
                                    device=dev)  # (n, layers)
        mask_logits = bool(np.any([s[3] < self.n_out for s in self.shapes]))
        params = [p.requires_grad_(True) for p in self.params]
        losses, correct = [], []
        for step in range(k):
            h = x[step]
            for j in range(depth):
                h = torch.relu(BatchedLinear.apply(h, params[j], params[depth + 1 + j]))
            logits = BatchedLinear.apply(h, params[depth], params[-1])
            if mask_logits:
                logits = logits + self.logit_mask[:, None, :]
            loss = F.cross_entropy(logits.reshape(n * b, -1), y[step].reshape(-1), reduction="none")
            loss = loss.view(n, b).mean(1)
            grads = torch.autograd.grad(loss.sum(), params)
            with torch.no_grad():
                losses.append(loss)
                correct.append((logits.argmax(-1) == y[step]).sum(1))
                if self.optimizer == "sgd":
                    self._sgd_step(grads, w_lr, b_lr, wd_t)
                else:
                    self._adamw_step(grads, w_lr, b_lr, decay, step_size[step], bc2_sqrt[step])
        for p in params:
            p.requires_grad_(False)
        self.grads = list(grads)
        self.steps += k
        with torch.no_grad():
            sq = sum(active[:, j] * (self.weights[j].square().sum((1, 2)) + self.biases[j].square().sum(1))
                     for j in range(depth + 1))
            # Each instance's K losses summed as one contiguous row: the same reduction whatever the number of
            # instances in the stack, so how sub-envs are grouped or split between processes changes nothing.
            return torch.stack([torch.stack(losses, 1).sum(1) / k, torch.stack(correct).sum(0).float() / (k * b),
                                sq.sqrt()])

    # The updates use torch's ``_foreach`` ops (one call per op for all parameters instead of one per parameter):
    # on the CPU they run the same per-tensor kernels, so results are bitwise those of the per-tensor ops.
    def _sgd_step(self, grads: Sequence[torch.Tensor], w_lr: list[torch.Tensor], b_lr: list[torch.Tensor],
                  wd: torch.Tensor) -> None:
        layers = self.depth + 1
        # Weight decay on weights only, as the env's parameter groups.
        decayed = torch._foreach_addcmul(list(grads[:layers]), self.weights, [wd] * layers)
        bufs = [entry[0] for entry in self.state]
        # Fresh buffers are zero, so ``momentum * 0 + grad`` equals torch's ``buf = grad.clone()`` first step.
        torch._foreach_mul_(bufs, self.momentum)
        torch._foreach_add_(bufs, [*decayed, *grads[layers:]])
        torch._foreach_addcmul_(self.params, bufs, [*w_lr, *b_lr], value=-1.0)

    def _adamw_step(self, grads: Sequence[torch.Tensor], w_lr: list[torch.Tensor], b_lr: list[torch.Tensor],
                    decay: torch.Tensor, step_size: torch.Tensor, bc2_sqrt: torch.Tensor) -> None:
        beta1, beta2 = ADAM_BETAS
        layers = self.depth + 1
        weight_shape, bias_shape = (-1, 1, 1), (-1, 1)
        shapes = [weight_shape] * layers + [bias_shape] * layers
        exp_avgs, exp_avg_sqs = [entry[0] for entry in self.state], [entry[1] for entry in self.state]
        # Decoupled weight decay, weights only.
        torch._foreach_mul_(self.weights, [decay[:, j].view(weight_shape) for j in range(layers)])
        torch._foreach_lerp_(exp_avgs, list(grads), 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, list(grads), list(grads), value=1 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, [bc2_sqrt.view(shape) for shape in shapes])
        torch._foreach_add_(denom, ADAM_EPS)
        # Identity layers have a zero learning rate: their step is masked to zero (frozen).
        steps = [step_size.view(shape) * (lr != 0) for shape, lr in zip(shapes, [*w_lr, *b_lr])]
        torch._foreach_addcdiv_(self.params, torch._foreach_mul(exp_avgs, steps), denom)


class BatchedLinear(torch.autograd.Function):
    """``x @ W^T + b`` for stacks ``x`` ``(n, B, in)``, ``W`` ``(n, out, in)``, ``b`` ``(n, out)``.

    The backward is written out so that the weight gradient is ``g^T @ x`` in that operand order, the order
    ``nn.Linear``'s backward uses: autograd's ``bmm`` backward computes ``x^T @ g`` and transposes, which rounds
    differently, and over hundreds of SGD steps rounding differences grow into different validation errors.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return torch.baddbmm(bias[:, None, :], x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        return grad_x, torch.bmm(grad.transpose(1, 2), x), grad.sum(1)


def _copy_padded(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst[:, :a, :b] = src`` for a ``src`` no larger than ``dst`` in any dimension."""
    dst[tuple(slice(0, s) for s in src.shape)] = src
