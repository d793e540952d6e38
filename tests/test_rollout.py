"""Rollout engines: seeded Gumbel-max sampling, the HF engine's outputs, helpers, and vLLM's glue (faked)."""
import types

import pytest
import torch

from seedgrpo.tasks import toy
from seedgrpo.rollout import make_rollout_engine
from seedgrpo.rollout.base import SamplingSettings, completion_mask_after_eos, row_seeds, tokenize_prompts
from seedgrpo.rollout.hf import HFRolloutEngine
from seedgrpo.rollout.sampling import SeededGumbelSampler, filter_logits, gumbel_noise
from seedgrpo.modeling.scoring import can_share_prefix
from seedgrpo.modeling.training_forward import completion_forward


@pytest.fixture(scope="module")
def tiny_model():
    tokenizer = toy.make_tokenizer()
    return toy.make_model(tokenizer, layers=2, hidden=64, seed=0).eval(), tokenizer


def _frequencies(logits, sampling, rows=40000):
    sampler = SeededGumbelSampler(list(range(rows)), prompt_length=0, sampling=sampling)
    scores = sampler(torch.zeros(rows, 0, dtype=torch.long), logits.expand(rows, -1))
    return torch.bincount(scores.argmax(-1), minlength=logits.shape[-1]).double() / rows


@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_gumbel_max_samples_the_temperature_softmax(temperature):
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]])
    expected = torch.softmax(logits[0].double() / temperature, -1)
    observed = _frequencies(logits, SamplingSettings(4, 4, temperature=temperature))
    sigma = (expected * (1 - expected) / 40000).sqrt()
    assert ((observed - expected).abs() <= 5 * sigma + 1e-12).all(), (observed, expected)


def test_top_p_and_top_k_sample_from_the_truncated_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.5, -1.0, 0.0]])
    observed = _frequencies(logits, SamplingSettings(4, 4, top_p=0.8))
    probs = torch.softmax(logits[0].double(), -1)  # 0.57, 0.21, 0.13, 0.03, 0.05: nucleus {0, 1, 2}
    kept = torch.tensor([True, True, True, False, False])
    assert observed[~kept].sum() == 0
    expected = torch.where(kept, probs, 0) / probs[kept].sum()
    assert (observed - expected).abs().max() < 0.015
    assert torch.isinf(filter_logits(logits, top_k=2, top_p=1.0)).sum() == 3


def test_noise_depends_only_on_row_key_step_and_token():
    keys = torch.tensor([5, 9, 11])
    noise = gumbel_noise(keys, 3, 7)
    assert torch.equal(gumbel_noise(keys.flip(0), 3, 7), noise.flip(0))
    assert torch.equal(gumbel_noise(keys[1:2], 3, 7), noise[1:2])
    assert not torch.equal(gumbel_noise(keys, 4, 7), noise)
    assert torch.isfinite(noise).all() and abs(noise.mean().item()) < 2


def test_row_seeds_are_per_prompt_position_and_sample():
    seeds = row_seeds(0, 1, [0, 1], 3)
    assert len(set(seeds)) == 6 and all(0 <= s < 2 ** 63 for s in seeds)
    assert row_seeds(0, 1, [1], 3) == seeds[3:]
    assert row_seeds(0, 2, [0, 1], 3) != seeds and row_seeds(1, 1, [0, 1], 3) != seeds


def test_samples_do_not_depend_on_the_batch_they_are_generated_in(tiny_model):
    model, tokenizer = tiny_model
    engine = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=SamplingSettings(16, 8))
    prompts = ["12+7=", "3*45=", "9-4="]
    together = engine.generate(prompts, num_generations=2, row_seeds=row_seeds(0, 1, [0, 1, 2], 2))
    alone = engine.generate(prompts[2:], num_generations=2, row_seeds=row_seeds(0, 1, [2], 2))
    width = alone.completion_ids.shape[1]
    assert torch.equal(together.completion_ids[4:, :width], alone.completion_ids)
    assert together.texts[4:] == alone.texts
    torch.testing.assert_close(together.logprobs[4:, :width], alone.logprobs, rtol=1e-5, atol=1e-5)
    chunked = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=SamplingSettings(16, 8),
                              generation_batch_size=4)
    again = chunked.generate(prompts, num_generations=2, row_seeds=row_seeds(0, 1, [0, 1, 2], 2))
    assert again.texts == together.texts


def test_shared_prompt_prefill_gives_the_samples_of_the_ordinary_path(tiny_model):
    model, tokenizer = tiny_model
    prompts = ["12+7=", "3*45=", "9-4=", "100-1="]  # different lengths: left padding in the shared prefill
    seeds = row_seeds(3, 2, [0, 1, 2, 3], 3)
    batches = {}
    for share in (False, True):
        for chunk in (None, 4):  # a chunk of 4 rows splits the groups of 3
            engine = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=SamplingSettings(16, 8),
                                     generation_batch_size=chunk, share_prompt_prefill=share)
            batches[share, chunk] = engine.generate(prompts, num_generations=3, row_seeds=seeds)
    reference = batches[False, None]
    for batch in batches.values():
        assert torch.equal(batch.completion_ids, reference.completion_ids)
        assert torch.equal(batch.completion_mask, reference.completion_mask)
        torch.testing.assert_close(batch.logprobs, reference.logprobs, rtol=1e-5, atol=1e-5)
    engine = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=SamplingSettings(16, 8))
    ids, mask = tokenize_prompts(tokenizer, [p for p in prompts for _ in range(3)], 16)
    cache = engine._shared_prefix_cache(model, ids, mask)
    assert cache.get_seq_length() == ids.shape[1] - 1 and cache.layers[0].keys.shape[0] == 12
    assert engine._shared_prefix_cache(model, ids[::3], mask[::3]) is None  # nothing shared: no extra pass


def test_rollout_logprobs_are_those_of_the_temperature_scaled_policy(tiny_model):
    model, tokenizer = tiny_model
    sampling = SamplingSettings(16, 6, temperature=0.7)
    batch = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=sampling).generate(
        ["25+17=", "8*8="], num_generations=3, row_seeds=row_seeds(0, 0, [0, 1], 3))
    ids = torch.cat([batch.prompt_ids, batch.completion_ids], 1)
    mask = torch.cat([batch.prompt_mask, batch.completion_mask], 1)
    with torch.no_grad():
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    prompt_len = batch.prompt_ids.shape[1]
    logp_all = torch.log_softmax(logits[:, prompt_len - 1:-1] / 0.7, -1)
    logp = logp_all.gather(-1, batch.completion_ids[..., None])[..., 0]
    torch.testing.assert_close(batch.logprobs, logp * batch.completion_mask, rtol=1e-4, atol=1e-5)
    assert (batch.logprobs[batch.completion_mask == 0] == 0).all()
    assert len(batch.texts) == 6 and batch.is_truncated.dtype == torch.bool


def test_hidden_states_come_with_log_probs_from_one_forward_pass(tiny_model):
    model, tokenizer = tiny_model
    sampling = SamplingSettings(16, 6, temperature=0.7)
    engine = HFRolloutEngine(model=model, tokenizer=tokenizer, sampling=sampling)
    seeds = row_seeds(0, 0, [0], 3)
    recorded = engine.generate(["25+17="], num_generations=3, row_seeds=seeds)
    scored = engine.generate(["25+17="], num_generations=3, row_seeds=seeds, with_hidden=True)
    assert recorded.texts == scored.texts and recorded.hidden is None
    assert scored.hidden.shape == (*scored.completion_ids.shape, 64)
    torch.testing.assert_close(recorded.logprobs, scored.logprobs, rtol=1e-4, atol=1e-5)


def test_completion_mask_stops_after_the_first_eos():
    ids = torch.tensor([[5, 1, 7, 1], [5, 6, 7, 8], [1, 0, 0, 0]])
    mask, truncated = completion_mask_after_eos(ids, [1])
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert truncated.tolist() == [False, True, False]


def test_prompts_are_left_padded_and_keep_their_last_tokens():
    tokenizer = toy.make_tokenizer()
    ids, mask = tokenize_prompts(tokenizer, ["abc", "abcdefgh"], max_prompt_length=5)
    assert mask.tolist() == [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]]
    assert tokenizer.decode(ids[1]) == "defgh" and ids[0, 0] == tokenizer.pad_token_id


def test_vllm_engine_without_vllm_says_how_to_fix_it():
    try:
        import vllm  # noqa: F401
        pytest.skip("vLLM is installed here")
    except ImportError:
        pass
    with pytest.raises(ImportError, match="rollout_engine='vllm' needs vLLM.*rollout_engine: hf"):
        make_rollout_engine("vllm", model=None, tokenizer=None, sampling=None, model_path="x",
                            vllm_config=None)
    with pytest.raises(ValueError, match="rollout_engine='sglang'"):
        make_rollout_engine("sglang")


class _FakeWorker:
    """What vLLM 0.33's GPU worker offers the weight sync: `reload_weights` (which enters the vLLM config
    context itself), `get_model`, `vllm_config`."""

    def __init__(self, calls):
        self.calls, self.vllm_config = calls, object()
        shared = torch.zeros(3, 2)  # a tied model: head and embedding share storage
        head = types.SimpleNamespace(weight=shared, quant_method=types.SimpleNamespace(
            process_weights_after_loading=lambda layer: calls.append(("re-process head", _CONFIG_CONTEXT[-1:]))))
        self.model = types.SimpleNamespace(lm_head=head, model=types.SimpleNamespace(
            embed_tokens=types.SimpleNamespace(weight=shared)))

    def reload_weights(self, weights_iterator=None):
        self.calls.append(("reload_weights", [name for name, tensor in weights_iterator if tensor.numel() > 0]))

    def get_model(self):
        return self.model


_CONFIG_CONTEXT = []  # the vLLM config a fake `set_current_vllm_config` has entered


class _FakeLLM:
    """A stand-in `vllm.LLM` that records its arguments and runs `collective_rpc` on one in-process worker, as
    vLLM's UniProcExecutor does (a method name is looked up on the worker; a callable gets it first)."""

    def __init__(self, **kwargs):
        self.kwargs, self.calls = kwargs, []
        self.worker = _FakeWorker(self.calls)

    def collective_rpc(self, method, timeout=None, args=(), kwargs=None):
        func = getattr(self.worker, method) if isinstance(method, str) else (lambda *a, **k: method(self.worker,
                                                                                                   *a, **k))
        return [func(*args, **(kwargs or {}))]

    def reset_prefix_cache(self):
        self.calls.append("reset")


@pytest.fixture
def fake_vllm(monkeypatch):
    import contextlib
    import sys

    @contextlib.contextmanager
    def set_current_vllm_config(config):
        _CONFIG_CONTEXT.append(config)
        try:
            yield
        finally:
            _CONFIG_CONTEXT.pop()

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = _FakeLLM, dict
    module.config = types.ModuleType("vllm.config")
    module.config.set_current_vllm_config = set_current_vllm_config
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.config", module.config)
    monkeypatch.delenv("VLLM_ENABLE_V1_MULTIPROCESSING", raising=False)
    return module


def _fake_vllm_engine(model, tokenizer, bucket_mb=0.0, **sampling):
    from seedgrpo.training.config import VLLMConfig
    from seedgrpo.rollout.vllm import VLLMRolloutEngine

    return VLLMRolloutEngine(model=model, tokenizer=tokenizer, sampling=SamplingSettings(8, 8, **sampling),
                             model_path="/some/model", vllm_config=VLLMConfig(sync_bucket_mb=bucket_mb))


def test_vllm_engine_is_built_as_vllm_033_expects(tiny_model, fake_vllm):
    model, tokenizer = tiny_model
    engine = _fake_vllm_engine(model, tokenizer)
    kwargs = engine.llm.kwargs
    assert kwargs["enforce_eager"] is True  # the default until a GPU run shows CUDA graphs survive sleep mode
    assert kwargs["logprobs_mode"] == "raw_logprobs" and kwargs["model"] == "/some/model"
    assert kwargs["dtype"] == "float32" and kwargs["max_model_len"] == 16


@pytest.mark.parametrize("bucket_mb", [0.0, 1.0])
def test_vllm_weight_sync_goes_through_the_worker_api(tiny_model, fake_vllm, bucket_mb):
    """collective_rpc("reload_weights") gets every parameter; the tied head is re-processed inside the worker's
    vLLM config context; then the prefix cache is reset."""
    model, tokenizer = tiny_model
    engine = _fake_vllm_engine(model, tokenizer, bucket_mb)
    engine.sync_weights()
    names = [n for n, _ in model.named_parameters()]
    assert model.config.tie_word_embeddings  # so the head is re-processed after the reload
    assert engine.llm.calls == [("reload_weights", names), ("re-process head", [engine.llm.worker.vllm_config]),
                                "reset"]
    assert engine._weights_current and not _CONFIG_CONTEXT


def test_vllm_engine_refuses_a_multiprocess_engine(tiny_model, fake_vllm, monkeypatch):
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    with pytest.raises(ValueError, match="VLLM_ENABLE_V1_MULTIPROCESSING='1'.*set it to 0"):
        _fake_vllm_engine(*tiny_model)


def test_vllm_logprobs_follow_the_hf_engines_definition():
    """softmax(logits / T) before top-k/top-p: raw at T = 1 (whatever the filters), processed (after the
    temperature) when nothing is filtered; T != 1 with a filter cannot match, and says so."""
    import warnings

    from seedgrpo.rollout.vllm import logprobs_mode_for

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert logprobs_mode_for(SamplingSettings(8, 8, temperature=1.0, top_p=0.9, top_k=20)) == "raw_logprobs"
        assert logprobs_mode_for(SamplingSettings(8, 8, temperature=0.6)) == "processed_logprobs"
    with pytest.warns(UserWarning, match="temperature=0.6, top_p=0.95.*se_rao's sequence weights differ"):
        assert logprobs_mode_for(SamplingSettings(8, 8, temperature=0.6, top_p=0.95)) == "processed_logprobs"


def test_vllm_buckets_are_sized_by_the_full_parameter_not_the_local_shard():
    """Under ZeRO-3 numel() is 0 outside a gather; sizing by it would make one giant bucket."""
    from seedgrpo.modeling.model_access import weight_buckets

    params = []
    for i in range(4):
        p = torch.nn.Parameter(torch.empty(0))
        p.ds_numel, p.ds_shape = 2 ** 18, (512, 512)  # 1 MiB each in float32, 0 elements held locally
        params.append((f"w{i}", p))
    names = [[n for n, _ in bucket] for bucket in weight_buckets(params, 2 * 2 ** 20)]
    assert names == [["w0", "w1"], ["w2", "w3"]]
    assert [[n for n, _ in b] for b in weight_buckets(params, 0)] == [["w0"], ["w1"], ["w2"], ["w3"]]


@pytest.mark.parametrize("checkpointing", [False, True])
@pytest.mark.parametrize("output", ["hidden", "logits"])
def test_shared_prefix_training_forward_matches_the_full_forward(output, checkpointing, monkeypatch):
    """Outputs and every parameter gradient of the shared-prefix forward equal the full forward's, with and
    without activation checkpointing (whose backward replays each layer with the same cache). float64, but
    HF's RMSNorm computes in float32, so gradients agree to float32 rounding of their largest entry."""
    from seedgrpo.modeling import training_forward

    prefix_passes = []
    real = training_forward.shared_prefix_training_cache
    monkeypatch.setattr(training_forward, "shared_prefix_training_cache",
                        lambda *a: prefix_passes.append(1) or real(*a))
    tokenizer = toy.make_tokenizer()
    model = toy.make_model(tokenizer, layers=2, hidden=64, seed=1).double().train()
    if checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert can_share_prefix(model, training=True) and can_share_prefix(model, training=False)
    prompts = ["12+7=", "12+7=", "3*45=", "9-4=", "9-4=", "9-4=", "100-1="]  # groups of 2, 1, 3, 1
    prompt_ids, prompt_mask = tokenize_prompts(tokenizer, prompts, 16)
    generator = torch.Generator().manual_seed(0)
    completion_ids = torch.randint(3, len(tokenizer), (7, 6), generator=generator)
    completion_mask = (torch.arange(6)[None] < torch.tensor([6, 3, 1, 6, 5, 2, 4])[:, None]).long()
    weights = torch.randn(7, 6, 64 if output == "hidden" else model.config.vocab_size, dtype=torch.float64,
                          generator=generator)
    results = []
    for share in (False, True):
        model.zero_grad()
        out = completion_forward(model, prompt_ids, prompt_mask, completion_ids, completion_mask,
                                 output=output, share_prefix=share)
        (out * weights * completion_mask[..., None]).sum().backward()
        results.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    assert len(prefix_passes) == 1
    (full, full_grads), (shared, shared_grads) = results
    assert full.shape == shared.shape == weights.shape
    valid = completion_mask.bool()
    torch.testing.assert_close(shared[valid], full[valid], rtol=1e-10, atol=1e-10)
    for name, grad in full_grads.items():
        scale = grad.abs().max().item()
        assert (shared_grads[name] - grad).abs().max().item() <= 1e-6 * scale, name
    assert any(g.abs().max() > 0 for g in full_grads.values())
    # lockstep (ZeRO-3 ranks): two passes even with nothing to share and one-token prompts; same result
    distinct = [0, 2, 3, 6]
    one_token = (prompt_ids[:, -1:], prompt_mask[:, -1:])
    for ids, mask in ((prompt_ids[distinct], prompt_mask[distinct]), one_token):
        rows = ids.shape[0]
        full = completion_forward(model, ids, mask, completion_ids[:rows], completion_mask[:rows],
                                  output=output, share_prefix=False)
        lockstep = completion_forward(model, ids, mask, completion_ids[:rows], completion_mask[:rows],
                                      output=output, lockstep=True)
        valid = completion_mask[:rows].bool()
        torch.testing.assert_close(lockstep[valid], full[valid], rtol=1e-10, atol=1e-10)
    assert len(prefix_passes) == 3  # both lockstep calls took the two-pass path
