"""Without seedgrpo._C (an install with SEEDGRPO_SKIP_EXTENSION=1, as scripts/gpu-check.sh does on a machine
without CMake) seedgrpo still imports and the answers come from the Python reference: the same hashes as the
C++ core, with one warning."""
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXTS = [r"so $\boxed{\dfrac12}$", "The final answer is 0.5", "no answer here", r"\boxed{(1,2)}", "Answer: 1,000"]

_WITHOUT_EXTENSION = f"""
import json, sys, warnings
sys.modules["seedgrpo._C"] = None  # what an install without the extension looks like to `import`
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import seedgrpo, seedgrpo.training.trainer
    from seedgrpo import answers
    hashes = answers.answer_hashes({TEXTS!r}).tolist()
    again = answers.answer_hashes({TEXTS!r}).tolist()
    canonical = answers.canonicalize("0.5")
print(json.dumps(dict(hashes=hashes, again=again, canonical=canonical,
                      warnings=[str(w.message) for w in caught if "seedgrpo._C" in str(w.message)])))
"""


def test_answers_fall_back_to_python_without_the_extension():
    from seedgrpo import answers

    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", _WITHOUT_EXTENSION], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["hashes"] == out["again"] == answers.answer_hashes(TEXTS, backend="c").tolist()
    assert out["canonical"] == "1/2"
    assert len(out["warnings"]) == 1 and "SEEDGRPO_SKIP_EXTENSION" in out["warnings"][0]
