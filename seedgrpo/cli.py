"""The `seedgrpo` command: `seedgrpo train|eval|demo [args]`.

    seedgrpo train --config configs/tiny-cpu.yaml --max_steps 5
    seedgrpo eval --help
    seedgrpo demo

Each subcommand's module is imported only when it runs, so `seedgrpo eval` does not pay for DeepSpeed.
"""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": ("seedgrpo.train", "train a policy with SEED-GRPO (python -m seedgrpo.train)"),
    "eval": ("seedgrpo.evaluate", "evaluate a model on the math benchmarks"),
    "demo": ("seedgrpo.demo", "warm start + SEED-GRPO on the toy arithmetic task, on CPU"),
}


def usage() -> str:
    lines = ["usage: seedgrpo {train,eval,demo} [args...]", ""]
    lines += [f"  {name:<6} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"seedgrpo: error: unknown command {command!r}\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[command][0])
    result = module.main(rest)
    return result if isinstance(result, int) else 0  # eval and demo return their results, not a code


if __name__ == "__main__":
    sys.exit(main())
