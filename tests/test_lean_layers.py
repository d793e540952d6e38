"""The memory-lean SwiGLU MLP and RMSNorm (seedgrpo/modeling/lean_layers.py) against the modules' own forward
under autograd (the oracle): the same outputs bit for bit, the same gradients by relative error, fewer saved
tensors, and modules that do not fit left as they are."""
from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from seedgrpo.modeling import lean_layers


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def reference_mlp(x, w_gate, w_up, w_down):
    return nn.functional.linear(nn.functional.silu(nn.functional.linear(x, w_gate))
                                * nn.functional.linear(x, w_up), w_down)


def reference_norm(x, weight, eps):  # LlamaRMSNorm.forward, written out
    x_f = x.to(torch.float32)
    return weight * (x_f * torch.rsqrt(x_f.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def grads(fn, inputs, grad_out):
    inputs = [t.detach().clone().requires_grad_(t.requires_grad) for t in inputs]
    out = fn(*inputs)
    out.backward(grad_out)
    return out.detach(), [t.grad for t in inputs]


@pytest.mark.parametrize("shape,inner", [((3, 5, 7), 11), ((1, 1, 4), 1), ((13, 33), 64)])
@pytest.mark.parametrize("trainable", [(True, True, True, True), (True, False, False, False),
                                       (False, True, False, True)])
def test_swiglu_matches_autograd_in_float64(shape, inner, trainable):
    g = torch.Generator().manual_seed(sum(shape) + inner)
    hidden = shape[-1]
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 2
    weights = [torch.randn(inner, hidden, generator=g, dtype=torch.float64),
               torch.randn(inner, hidden, generator=g, dtype=torch.float64),
               torch.randn(hidden, inner, generator=g, dtype=torch.float64)]
    inputs = [t.requires_grad_(flag) for t, flag in zip([x, *weights], trainable)]
    grad_out = torch.randn(*shape, generator=g, dtype=torch.float64)
    out, got = grads(lean_layers.swiglu_mlp, inputs, grad_out)
    ref_out, want = grads(reference_mlp, inputs, grad_out)
    assert torch.equal(out, ref_out)
    for flag, a, b in zip(trainable, got, want):
        assert (a is None) == (not flag)
        if flag:
            assert rel_err(a, b) < 1e-12


@pytest.mark.parametrize("shape", [(3, 5, 7), (1, 3), (4, 130)])  # width 1: a zero gradient, all rounding
@pytest.mark.parametrize("trainable", [(True, True), (True, False), (False, True)])
def test_rms_norm_matches_autograd_in_float64(shape, trainable):
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 3 + 0.5
    weight = torch.randn(shape[-1], generator=g, dtype=torch.float64)
    grad_out = torch.randn(*shape, generator=g, dtype=torch.float64)
    inputs = [t.requires_grad_(flag) for t, flag in zip([x, weight], trainable)]
    out, got = grads(lambda a, w: lean_layers.rms_norm(a, w, 1e-6), inputs, grad_out)
    ref_out, want = grads(lambda a, w: reference_norm(a, w, 1e-6), inputs, grad_out)
    # float64 goes through float32 in both (the Llama norm's own cast): equal forward, gradients to float32
    assert torch.equal(out, ref_out)
    for flag, a, b in zip(trainable, got, want):
        if flag:
            assert rel_err(a, b) < 1e-6


def test_bfloat16_forward_is_identical_and_gradients_as_close_as_autograds():
    """In bfloat16 (the GPU dtype) both forms round; the lean gradients must be as close to a float64 truth
    as autograd's own are (within a small factor)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 9, 64, generator=g)
    w = [torch.randn(96, 64, generator=g) / 8, torch.randn(96, 64, generator=g) / 8,
         torch.randn(64, 96, generator=g) / 8]
    grad_out = torch.randn(6, 9, 64, generator=g)
    low = [t.bfloat16().requires_grad_() for t in [x, *w]]
    truth = grads(reference_mlp, [t.double().requires_grad_() for t in low], grad_out.double())[1]
    out, got = grads(lean_layers.swiglu_mlp, low, grad_out.bfloat16())
    ref_out, want = grads(reference_mlp, low, grad_out.bfloat16())
    assert torch.equal(out, ref_out)
    for a, b, t in zip(got, want, truth):
        assert rel_err(a.double(), t) < 2 * rel_err(b.double(), t) + 1e-3

    norm_low = [x.bfloat16().requires_grad_(), (1 + torch.randn(64, generator=g) / 4).bfloat16().requires_grad_()]
    truth = grads(lambda a, wt: reference_norm(a, wt, 1e-5), [t.double().requires_grad_() for t in norm_low],
                  grad_out.double())[1]
    out, got = grads(lambda a, wt: lean_layers.rms_norm(a, wt, 1e-5), norm_low, grad_out.bfloat16())
    ref_out, want = grads(lambda a, wt: reference_norm(a, wt, 1e-5), norm_low, grad_out.bfloat16())
    assert torch.equal(out, ref_out)
    for a, b, t in zip(got, want, truth):
        assert rel_err(a.double(), t) < 2 * rel_err(b.double(), t) + 1e-3


def tiny_llama(dtype=torch.float64, layers=2, **overrides):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=97, hidden_size=48, intermediate_size=80, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         **overrides)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).to(dtype)


def loss_and_grads(model, ids):
    model.zero_grad()
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_a_whole_model_keeps_its_logits_and_gradients():
    model = tiny_llama()
    ids = torch.randint(0, 97, (3, 17), generator=torch.Generator().manual_seed(1))
    logits, want = loss_and_grads(model, ids)
    # two norms and one MLP per layer, and the final norm
    assert lean_layers.apply(model) == 2 * 3 + 1
    lean_logits, got = loss_and_grads(model, ids)
    assert torch.equal(lean_logits, logits)
    for name in want:
        assert rel_err(got[name], want[name]) < 1e-6, name  # the norms compute in float32 by design
    with torch.no_grad():  # without autograd the modules' own forward runs
        assert torch.equal(model(input_ids=ids).logits, logits)
    # a copy, and a pickled model, keep the lean forms, bound to their own modules
    buffer = io.BytesIO()
    torch.save(model, buffer)
    for twin in (copy.deepcopy(model), torch.load(io.BytesIO(buffer.getvalue()), weights_only=False)):
        mlp = twin.model.layers[0].mlp
        assert mlp.forward.args == (mlp,)
        assert torch.equal(loss_and_grads(twin, ids)[0], logits)


def saved_bytes(model, ids) -> int:
    kept = {}

    def pack(tensor):
        kept[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids)
    return sum(kept.values())


def test_fewer_tensors_are_kept_for_backward():
    model = tiny_llama(torch.float32, layers=3)
    ids = torch.randint(0, 97, (4, 20), generator=torch.Generator().manual_seed(2))
    before = saved_bytes(model, ids)
    lean_layers.apply(model)
    after = saved_bytes(model, ids)
    tokens, hidden, inner = ids.numel(), model.config.hidden_size, model.config.intermediate_size
    # per layer: silu(gate) and the product (2 x inner) and two normalised inputs (2 x hidden) are not kept;
    # the final norm's normalised input neither
    dropped = 4 * tokens * (3 * (2 * inner + 2 * hidden) + hidden)
    assert before - after >= dropped


def test_modules_that_do_not_fit_keep_their_forward():
    model = tiny_llama(layers=1)
    layer = model.model.layers[0]

    class GemmaStyleNorm(nn.Module):  # the right parts, another function: the probe tells them apart
        def __init__(self, width):
            super().__init__()
            self.weight = nn.Parameter(torch.zeros(width, dtype=torch.float64))
            self.variance_epsilon = 1e-6

        def forward(self, x):
            return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    layer.input_layernorm = GemmaStyleNorm(48)
    layer.mlp.up_proj = nn.Linear(48, 80, bias=True, dtype=torch.float64)       # a bias: not the plain form
    for p in model.model.norm.parameters():
        p.ds_id = 7                                                               # partitioned by ZeRO-3
    assert lean_layers.apply(model) == 1                                          # the post-attention norm
    assert "forward" in vars(layer.post_attention_layernorm)
    for module in (layer.input_layernorm, layer.mlp, model.model.norm):
        assert "forward" not in vars(module)


def test_an_mlp_with_another_activation_keeps_its_forward():
    model = tiny_llama(layers=1, hidden_act="gelu")        # the same parts as SwiGLU's, another function
    assert lean_layers.apply(model) == 3                   # the norms only
    assert "forward" not in vars(model.model.layers[0].mlp)


def test_lora_layers_are_left_to_peft():
    peft = pytest.importorskip("peft")
    model = tiny_llama(layers=1)
    model = peft.get_peft_model(model, peft.LoraConfig(r=4, target_modules=["gate_proj", "q_proj"]))
    inner = model.get_base_model()
    assert lean_layers.apply(inner) == 3                                           # the norms only
    assert "forward" not in vars(inner.model.layers[0].mlp)
