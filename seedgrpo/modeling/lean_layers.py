"""Memory-lean forms of the Llama-family SwiGLU MLP and RMSNorm for the training forward: the same forward,
bit for bit, keeping fewer tensors for backward.

    lean_layers.apply(model)   # -> how many modules now run their lean form

Without gradient checkpointing, a decoder layer's activation memory is what autograd keeps for backward. The
SwiGLU MLP `down(silu(x Wg) * (x Wu))` keeps x and four intermediate-size tensors (the gate, its silu, the
up projection and the product); its lean form keeps x, the gate and the up projection, and recomputes the silu
and the product in backward (elementwise work: no matmul is repeated). RMSNorm keeps its input and its
normalised input; its lean form keeps the input and one reciprocal RMS per row. On SmolLM2-135M that is
4,224 of the ~11,200 activation floats a layer keeps per token (`benchmarks/bench_memory.py saved`).

A module is given its lean form only where that form is known to be the module's own function:
  * its parts are the plain ones (`nn.Linear` without bias — a LoRA or quantised layer stays as it is —, a
    parameterless activation, one weight vector and an epsilon), and
  * on a probe input, the lean forward returns exactly (`torch.equal`) what the module's own forward does —
    so a variant computing something else (a Gemma-style `1 + weight` norm, a scaled MLP) keeps its forward.
Parameters partitioned by ZeRO-3 (gathered by hooks around each submodule's own call) are left alone.
Without autograd (rollout, scoring) the module's own forward runs.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["apply", "rms_norm", "swiglu_mlp"]


class _SwiGLUMLP(torch.autograd.Function):
    """down(silu(x Wg) * (x Wu)) keeping x, the gate and the up projection."""

    @staticmethod
    def forward(ctx, x, w_gate, w_up, w_down):
        gate, up = F.linear(x, w_gate), F.linear(x, w_up)
        ctx.save_for_backward(x, gate, up, w_gate, w_up, w_down)
        return F.linear(F.silu(gate) * up, w_down)

    @staticmethod
    def backward(ctx, grad_out):
        x, gate, up, w_gate, w_up, w_down = ctx.saved_tensors
        need_x, need_gate, need_up, need_down = ctx.needs_input_grad
        activated = F.silu(gate)                        # recomputed: the same op as the forward's
        grad_product = grad_out @ w_down
        grad_down = None
        if need_down:
            grad_down = _weight_grad(grad_out, activated * up)
        grad_up = grad_product * activated
        del activated
        # silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g), in float32 at least, as autograd's silu_backward
        compute = torch.promote_types(gate.dtype, torch.float32)
        gate_c = gate.to(compute)
        sigmoid = torch.sigmoid(gate_c)
        grad_gate = ((grad_product * up).to(compute) * sigmoid * (1 + gate_c * (1 - sigmoid))).to(gate.dtype)
        del gate_c, sigmoid, grad_product
        grad_x = grad_gate @ w_gate + grad_up @ w_up if need_x else None
        grad_w_gate = _weight_grad(grad_gate, x) if need_gate else None
        grad_w_up = _weight_grad(grad_up, x) if need_up else None
        return grad_x, grad_w_gate, grad_w_up, grad_down


def _weight_grad(grad_out: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """d loss / d W of `F.linear(inputs, W)`: grad_out^T @ inputs over all leading dimensions."""
    return grad_out.reshape(-1, grad_out.shape[-1]).T @ inputs.reshape(-1, inputs.shape[-1])


class _RMSNorm(torch.autograd.Function):
    """weight * (x / rms(x)), computed in float32 and cast back as the Llama family does, keeping x and the
    reciprocal RMS per row."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        x_f = x.to(torch.float32)
        rstd = torch.rsqrt(x_f.pow(2).mean(-1, keepdim=True) + eps)
        ctx.save_for_backward(x, rstd, weight)
        return weight * (x_f * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        x, rstd, weight = ctx.saved_tensors
        normed = x.to(torch.float32) * rstd
        grad_weight = None
        if ctx.needs_input_grad[1]:
            reduce = tuple(range(grad_out.dim() - weight.dim()))
            grad_weight = (grad_out * normed.to(x.dtype)).sum(reduce).to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_normed = (grad_out * weight).to(torch.float32)
            # d(x r)/dx with r = mean(x^2)^(-1/2): r (g - n mean(g n)), n = x r
            grad_x = (rstd * (grad_normed - normed * (grad_normed * normed).mean(-1, keepdim=True))).to(x.dtype)
        return grad_x, grad_weight, None


def swiglu_mlp(x, w_gate, w_up, w_down):
    """`down(silu(x @ w_gate.T) * (x @ w_up.T))`, keeping x, the gate and the up projection for backward."""
    return _SwiGLUMLP.apply(x, w_gate, w_up, w_down)


def rms_norm(x, weight, eps: float):
    """Llama's RMSNorm, keeping x and one reciprocal RMS per row for backward."""
    return _RMSNorm.apply(x, weight, eps)


# ------------------------------------------------------------------------------------------ module forms
def _lean_mlp_forward(self, x):
    if not torch.is_grad_enabled():
        return type(self).forward(self, x)
    return swiglu_mlp(x, self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight)


def _lean_norm_forward(self, hidden_states):
    if not torch.is_grad_enabled():
        return type(self).forward(self, hidden_states)
    return rms_norm(hidden_states, self.weight, self.variance_epsilon)


def _is_plain_linear(module) -> bool:
    return type(module) is nn.Linear and module.bias is None


def _lean_form(module):
    """The lean forward that fits `module`'s parts, or None."""
    if (all(_is_plain_linear(getattr(module, name, None)) for name in ("gate_proj", "up_proj", "down_proj"))
            and isinstance(getattr(module, "act_fn", None), nn.Module) and not list(module.act_fn.parameters())):
        # any parameterless activation: the probe keeps those that are not SiLU (GELU, ReLU²) as they are
        return _lean_mlp_forward
    weight, eps = getattr(module, "weight", None), getattr(module, "variance_epsilon", None)
    if (isinstance(weight, nn.Parameter) and weight.dim() == 1 and isinstance(eps, float)
            and len(list(module.parameters())) == 1 and not list(module.children())):
        return _lean_norm_forward
    return None


def _partitioned(module) -> bool:
    return any(hasattr(p, "ds_id") for p in module.parameters())


@torch.no_grad()
def _same_on_probe(module, lean_forward) -> bool:
    """Whether the lean forward returns exactly what the module's own forward does on a random input (run with
    autograd on, so the lean path is the one compared; nothing is kept: no parameter is asked for a gradient
    through this call's outputs)."""
    param = next(module.parameters())
    width = module.gate_proj.in_features if hasattr(module, "gate_proj") else param.shape[0]
    generator = torch.Generator(device=param.device).manual_seed(0)
    probe = torch.randn(2, 3, width, generator=generator, device=param.device).to(param.dtype)
    own = type(module).forward(module, probe)
    with torch.enable_grad():
        lean = lean_forward(module, probe)
    return own.dtype == lean.dtype and own.shape == lean.shape and torch.equal(own, lean.detach())


def apply(model: nn.Module) -> int:
    """Give every eligible SwiGLU MLP and RMSNorm of `model` its lean form (in place; see the module notes);
    returns how many modules changed."""
    changed = 0
    for module in model.modules():
        lean_forward = _lean_form(module)
        if lean_forward is None or _partitioned(module) or not _same_on_probe(module, lean_forward):
            continue
        # a partial, not a bound method: a model pickles (torch.save) and deep-copies with its lean forms
        module.forward = functools.partial(lean_forward, module)
        changed += 1
    return changed
