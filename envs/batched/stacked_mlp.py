"""N MLPs of different depth and width trained as one batched computation (stacked, zero-padded parameters).

Tiny target networks spend their training time in per-op framework overhead, not in arithmetic, so N instances
are stacked into tensors ``(N, out, in)`` and every training step is a handful of ``baddbmm``/``bmm`` calls for
all N, with the backward pass written out (see :meth:`StackedMLP.train`).

Padding is exact, not approximate:

- Padded hidden units have zero incoming weights, zero bias and zero outgoing weights: their pre-activation is 0,
  ``relu(0) = 0`` and PyTorch's ``relu'(0) = 0``, so every gradient they receive or send is exactly 0 and they stay
  0 under SGD with momentum and AdamW (weight decay of 0 is 0).
- Padded input features are zero in the data and have zero weights (same argument).
- A missing hidden layer (an instance shallower than the stack) is stored as an identity layer, ``W = I``,
  ``b = 0``, after the instance's real layers, but never computed: training sorts the rows by depth, runs hidden
  layer ``j`` on the prefix of rows that own it, and feeds each row's own last hidden output to the head. (Were it
  computed it would change nothing: its input is post-ReLU, so ``relu(I h) = h`` exactly; skipping it saves the
  arithmetic.)
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

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Every instance's forward pass on its own inputs ``x`` ``(n, V, n_in)`` (the validation buffers): logits
        ``(n, V, n_out)`` (padded classes ``-inf``) and each hidden layer's post-ReLU output ``(n, V, width)``.
        Every row runs every layer: a row's identity layers pass its last hidden output on unchanged
        (``relu(I h) = h``, exactly), so its head input is its own."""
        h, hidden = x, []
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            h = torch.baddbmm(b[:, None], h, w.transpose(1, 2)).relu_()
            hidden.append(h)
        logits = torch.baddbmm(self.biases[-1][:, None], h, self.weights[-1].transpose(1, 2))
        return logits + self.logit_mask[:, None, :], hidden

    @torch.no_grad()
    def error_importances(self, hidden: list[torch.Tensor], predicted: torch.Tensor, errors: torch.Tensor
                          ) -> list[torch.Tensor]:
        """The neuron log's error pass of every instance, from :meth:`forward`'s ``hidden``, with the backward pass
        written out (one seed for all rows instead of one autograd pass per instance). ``errors`` ``(n, V)`` marks
        the samples each row's pass uses (every other sample gets weight 0).

        Returns per hidden layer ``(n, width)`` the mean over a row's errors of ``|a * d logit_predicted / d a|``
        (:meth:`~traingym.envs.monitoring.neuron_log.NeuronLog.record_errors`). A row's identity layers pass the
        gradient through ``relu'`` of its own last output, which changes nothing where ``a > 0`` and leaves
        ``|a * g| = 0`` where ``a = 0``, as the module's own pass."""
        weight = errors.float()
        count = weight.sum(1).clamp_min(1.0)[:, None]
        importances: list[torch.Tensor] = []
        grad = _head_rows(self.weights[-1], predicted)
        for j in range(self.depth - 1, -1, -1):  # grad: d logit_predicted / d hidden[j]
            importances.append((hidden[j] * grad).abs_().mul_(weight[..., None]).sum(1) / count)
            if j:
                grad = torch.bmm(torch.ops.aten.threshold_backward(grad, hidden[j], 0), self.weights[j])
        return importances[::-1]

    @torch.no_grad()
    def input_relevance(self, x: torch.Tensor, hidden: list[torch.Tensor], predicted: torch.Tensor,
                        labels: torch.Tensor, errors: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Input relevance of the instances at ``rows`` (None: every row), from :meth:`forward`'s ``x`` and
        ``hidden`` (of every row), the backward pass written out as in :meth:`error_importances`.

        Returns ``(rows, 2, n_in)``, per selected row the summed shares of the positive part of
        ``x * d(logit_predicted - logit_true)/dx`` over a row's errors, and per feature the number of errors where
        it is non-zero (:meth:`~traingym.envs.monitoring.neuron_log.NeuronLog.record_input_relevance`)."""
        pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))
        x, hidden, errors = pick(x), [pick(h) for h in hidden], pick(errors)
        head, weights = pick(self.weights[-1]), [pick(w) for w in self.weights[:-1]]
        grad = _head_rows(head, pick(predicted)) - _head_rows(head, pick(labels))
        for j in range(self.depth - 1, -1, -1):  # grad: d (logit_predicted - logit_true) / d input of layer j + 1
            grad = torch.bmm(torch.ops.aten.threshold_backward(grad, hidden[j], 0), weights[j])
        relevance = (x * grad).clamp_min_(0)
        shares = relevance / relevance.sum(2, keepdim=True).clamp_min(1e-12)
        weight = errors.float()
        return torch.stack([(shares * weight[..., None]).sum(1), ((x != 0) & errors[..., None]).sum(1).float()], 1)

    # ------------------------------------------------------------------ training
    def train(self, x: torch.Tensor, y: torch.Tensor, lr: Sequence[float], weight_decay: Sequence[float]
              ) -> torch.Tensor:
        """K optimizer steps of all instances on ``x`` ``(K, n, B, n_in)`` and ``y`` ``(K, n, B)``.

        Returns ``(3, n)``: mean training loss, training accuracy and global weight norm per instance (on the
        device, for the caller's single host copy).

        The forward and backward passes are written out (no autograd graph: its per-op bookkeeping cost more than
        the arithmetic of these small matmuls), with the kernels autograd would call, in its operand order. Rows
        are trained sorted by depth, deepest first, so hidden layer ``j`` runs on the prefix of rows that own it:
        no instance computes an identity layer, and the identity layers are never touched.
        """
        k, n, b = y.shape
        dev, depth = self.device, self.depth
        own_depth = np.array([s[0] for s in self.shapes])
        order = np.argsort(-own_depth, kind="stable")
        permuted = not np.array_equal(order, np.arange(n))
        index = torch.as_tensor(order, device=dev)
        take = (lambda t: t.index_select(0, index)) if permuted else (lambda t: t)
        # Rows owning hidden layer j (a prefix once sorted); rows of depth d feed the head from layer d's output.
        rows = [int((own_depth > j).sum()) for j in range(depth)] + [0]
        weights, biases = [take(w) for w in self.weights], [take(bias) for bias in self.biases]
        state = [[take(t) for t in entry] for entry in self.state]
        if permuted:
            x, y = x.index_select(1, index), y.index_select(1, index)
        lr64 = np.asarray(lr, dtype=np.float64)[order]
        wd64 = np.asarray(weight_decay, dtype=np.float64)[order]
        lr_t = torch.as_tensor(lr64, dtype=torch.float32, device=dev)
        sizes = [*rows[:depth], n]  # rows updated per layer: hidden layers' prefixes, then the head (every row)
        params = [w[:m] for w, m in zip(weights, sizes)] + [bias[:m] for bias, m in zip(biases, sizes)]
        bufs = [[t[:m] for t in entry] for entry, m in zip(state, sizes + sizes)]
        p_lr = [lr_t[:m, None, None] for m in sizes] + [lr_t[:m, None] for m in sizes]
        if self.optimizer == "sgd":
            wd_t = torch.as_tensor(wd64, dtype=torch.float32, device=dev)
            p_wd = [wd_t[:m, None, None] for m in sizes]
        else:
            steps = self.steps[order][None, :] + np.arange(1, k + 1)[:, None]  # (K, n)
            beta1, beta2 = ADAM_BETAS
            # Bias corrections in float64 on the host, as torch computes them (Python floats).
            step_size = torch.as_tensor(-lr64 / (1 - beta1**steps), dtype=torch.float32, device=dev)
            bc2_sqrt = torch.as_tensor(np.sqrt(1 - beta2**steps), dtype=torch.float32, device=dev)
            decay = torch.as_tensor(1 - lr64 * wd64, dtype=torch.float32, device=dev)
        logit_mask = take(self.logit_mask)[:, None, :] if any(s[3] < self.n_out for s in self.shapes) else None
        # d(mean cross-entropy)/d(log-probabilities), as nll_loss's backward: -(1 / B) at each target.
        scale = -(torch.ones((), device=dev) / b)
        target_grad = F.one_hot(y, self.n_out).to(torch.float32) * scale  # (K, n, B, classes)
        all_logits: list[torch.Tensor] = []
        log_probs: list[torch.Tensor] = []
        # Views made once: the optimizer updates the parameters in place, so they stay current.
        p_weights, p_biases = params[: depth + 1], params[depth + 1:]
        w_in = [w.transpose(1, 2) for w in p_weights]
        b_in = [bias[:, None] for bias in p_biases]
        # Input of hidden layer j restricted to its rows (None: every row of the previous layer's output).
        narrow = [rows[j] if rows[j] < (n if j == 0 else rows[j - 1]) else None for j in range(depth)]
        for step in range(k):
            acts = [x[step]]  # acts[j]: output of hidden layer j - 1 (post-ReLU), acts[0] the input
            inputs = []  # inputs[j]: the rows of acts[j] that hidden layer j runs on
            for j in range(depth):
                inputs.append(acts[j] if narrow[j] is None else acts[j][: narrow[j]])
                acts.append(torch.baddbmm(b_in[j], inputs[j], w_in[j]).relu_())
            head_in = _head_input(acts, rows)
            logits = torch.baddbmm(b_in[depth], head_in, w_in[depth])
            if logit_mask is not None:
                logits = logits + logit_mask
            log_p = torch.log_softmax(logits, -1)
            all_logits.append(logits)
            log_probs.append(log_p)
            grad = torch.ops.aten._log_softmax_backward_data(target_grad[step], log_p, -1, torch.float32)
            grads_w: list[torch.Tensor] = [grad] * (depth + 1)
            grads_b: list[torch.Tensor] = [grad] * (depth + 1)
            # Weight gradients as g^T @ x, nn.Linear's backward operand order: (x^T @ g)^T, what autograd's bmm
            # backward computes, rounds differently, and over hundreds of steps that grows into other episodes.
            grads_w[depth] = torch.bmm(grad.transpose(1, 2), head_in)
            grads_b[depth] = grad.sum(1)
            from_head = torch.bmm(grad, p_weights[depth])
            from_above = from_head
            for j in range(depth - 1, -1, -1):  # hidden layer j: its output is acts[j + 1] (rows[j] rows)
                if j == depth - 1 or not rows[j + 1]:
                    grad_out = from_head if rows[j] == n else from_head[: rows[j]]
                elif rows[j + 1] == rows[j]:
                    grad_out = from_above
                else:
                    grad_out = torch.cat([from_above, from_head[rows[j + 1]: rows[j]]])
                grad = torch.ops.aten.threshold_backward(grad_out, acts[j + 1], 0)
                grads_w[j] = torch.bmm(grad.transpose(1, 2), inputs[j])
                grads_b[j] = grad.sum(1)
                if j:
                    from_above = torch.bmm(grad, p_weights[j])
            if self.optimizer == "sgd":
                _sgd_step(p_weights, p_biases, grads_w, grads_b, bufs, p_lr, p_wd, self.momentum)
            else:
                _adamw_step(params, [*grads_w, *grads_b], bufs, decay, step_size[step], bc2_sqrt[step])
        grads = [*grads_w, *grads_b]
        if permuted:
            for full, part in zip(self.params, [*weights, *biases]):
                full.index_copy_(0, index, part)
            for full_entry, part_entry in zip(self.state, state):
                for full, part in zip(full_entry, part_entry):
                    full.index_copy_(0, index, part)
        # The last step's gradients at full stack shape, original row order (``store`` hands them to the module).
        self.grads = []
        for p, g in zip(self.params, grads):
            full = torch.zeros_like(p)
            full[: g.shape[0]] = g
            self.grads.append(torch.zeros_like(p).index_copy_(0, index, full) if permuted else full)
        self.steps += k
        logits_k, log_p_k = torch.stack(all_logits), torch.stack(log_probs)  # (K, n, B, classes)
        losses = -log_p_k.gather(-1, y[..., None]).squeeze(-1).mean(2)  # (K, n)
        correct = (logits_k.argmax(-1) == y).sum(2)
        if permuted:
            inverse = torch.as_tensor(np.argsort(order), device=dev)
            losses, correct = losses.index_select(1, inverse), correct.index_select(1, inverse)
        active = self.active.to(dev)
        sq = sum(active[:, j] * (self.weights[j].square().sum((1, 2)) + self.biases[j].square().sum(1))
                 for j in range(depth + 1))
        # Each instance's K losses summed as one contiguous row: the same reduction whatever the number of
        # instances in the stack, so how sub-envs are grouped or split between processes changes nothing.
        return torch.stack([losses.t().contiguous().sum(1) / k, correct.sum(0).float() / (k * b), sq.sqrt()])


def _head_rows(head: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """``(n, V, width)``: the head's weight row of each sample's class in ``classes`` ``(n, V)``, i.e.
    ``d logit_class / d head input``."""
    return head.gather(1, classes[..., None].expand(-1, -1, head.shape[2]))


def _head_input(acts: list[torch.Tensor], rows: list[int]) -> torch.Tensor:
    """The head's input, every row: a row of depth ``d`` contributes its layer-``d`` output ``acts[d]``; rows are
    sorted deepest first, so depth ``d`` rows are ``rows[d]:rows[d - 1]`` (``rows[-1]`` = 0 past the deepest)."""
    depth = len(acts) - 1
    parts = [acts[d][rows[d]: rows[d - 1]] for d in range(depth, 0, -1) if rows[d] < rows[d - 1]]
    return parts[0] if len(parts) == 1 else torch.cat(parts)


# The updates use torch's ``_foreach`` ops (one call per op for all parameters instead of one per parameter): on
# the CPU they run the same per-tensor kernels, so results are bitwise those of the per-tensor ops.
def _sgd_step(weights: list[torch.Tensor], biases: list[torch.Tensor], grads_w: list[torch.Tensor],
              grads_b: list[torch.Tensor], state: list[list[torch.Tensor]], lr: list[torch.Tensor],
              wd: list[torch.Tensor], momentum: float) -> None:
    # Weight decay on weights only, as the env's parameter groups.
    decayed = torch._foreach_addcmul(grads_w, weights, wd)
    bufs = [entry[0] for entry in state]
    # Fresh buffers are zero, so ``momentum * 0 + grad`` equals torch's ``buf = grad.clone()`` first step.
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, [*decayed, *grads_b])
    torch._foreach_addcmul_([*weights, *biases], bufs, lr, value=-1.0)


def _adamw_step(params: list[torch.Tensor], grads: list[torch.Tensor], state: list[list[torch.Tensor]],
                decay: torch.Tensor, step_size: torch.Tensor, bc2_sqrt: torch.Tensor
                ) -> None:
    beta1, beta2 = ADAM_BETAS
    layers = len(params) // 2
    sizes = [p.shape[0] for p in params]
    weight_shape, bias_shape = (-1, 1, 1), (-1, 1)
    shapes = [weight_shape] * layers + [bias_shape] * layers
    exp_avgs, exp_avg_sqs = [entry[0] for entry in state], [entry[1] for entry in state]
    # Decoupled weight decay, weights only.
    torch._foreach_mul_(params[:layers], [decay[:m].view(weight_shape) for m in sizes[:layers]])
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
    denom = torch._foreach_sqrt(exp_avg_sqs)
    torch._foreach_div_(denom, [bc2_sqrt[:m].view(shape) for m, shape in zip(sizes, shapes)])
    torch._foreach_add_(denom, ADAM_EPS)
    steps = [step_size[:m].view(shape) for m, shape in zip(sizes, shapes)]
    torch._foreach_addcdiv_(params, torch._foreach_mul(exp_avgs, steps), denom)


def _copy_padded(dst: torch.Tensor, src: torch.Tensor) -> None:
    """``dst[:, :a, :b] = src`` for a ``src`` no larger than ``dst`` in any dimension."""
    dst[tuple(slice(0, s) for s in src.shape)] = src
