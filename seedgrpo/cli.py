"""The `seedgrpo` command: `seedgrpo train|serve|eval|demo [args]`.

    seedgrpo train --config configs/tiny-cpu.yaml --max_steps 5
    seedgrpo serve --config configs/tiny-cpu.yaml --port 8765     # a generation server (docs/generation.md)
    seedgrpo eval --help
    seedgrpo demo
    seedgrpo demo-real

Each subcommand's module is imported only when it runs, so `seedgrpo eval` does not pay for DeepSpeed.
A mistake in the input (a bad key or value, a missing file, a bad JSON line, a model that cannot be found, a
missing optional package) prints its one-line message and the usage, not a traceback; `--debug` shows the
traceback.
"""
from __future__ import annotations

import importlib
import os
import sys

COMMANDS = {
    "train": ("seedgrpo.train", "train a policy with SEED-GRPO (python -m seedgrpo.train)"),
    "serve": ("seedgrpo.rollout.server", "a generation server for generation_mode: server"),
    "eval": ("seedgrpo.evaluate", "evaluate a model on the math benchmarks"),
    "demo": ("seedgrpo.demo", "warm start + SEED-GRPO on the toy arithmetic task, on CPU"),
    "demo-real": ("seedgrpo.demo:real", "SEED-GRPO on SmolLM2-135M-Instruct (a GGUF from PyPI), on CPU"),
}
# What a user's input can raise (json.JSONDecodeError is a ValueError, FileNotFoundError an OSError);
# anything else is a bug and keeps its traceback.
INPUT_ERRORS = (ValueError, ImportError, OSError)


def usage() -> str:
    lines = ["usage: seedgrpo {train,serve,eval,demo,demo-real} [args...] [--debug]", ""]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def call_reporting_errors(fn, argv: list[str], *, prog: str, usage_text: str):
    """`fn(argv)`, with an input error printed as `prog: error: message` + the usage (exit code 2) unless
    `--debug` is in argv (then removed before the call), which lets the traceback through."""
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        return fn(argv)
    except INPUT_ERRORS as error:
        if debug:
            raise
        world = int(os.environ.get("WORLD_SIZE", "1"))
        where = f" [rank {os.environ.get('RANK', '0')}]" if world > 1 else ""
        message = str(error).strip() or type(error).__name__
        print(f"{prog}{where}: error: {message}\n{usage_text}\n(--debug shows the traceback)",
              file=sys.stderr, flush=True)
        return 2


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"seedgrpo: error: unknown command {command!r}\n{usage()}", file=sys.stderr)
        return 2
    path, _, attribute = COMMANDS[command][0].partition(":")  # "module:name": a namespace inside a module
    module = importlib.import_module(path)
    module = getattr(module, attribute) if attribute else module
    if command in ("train", "serve"):  # report their own errors (train is also `python -m seedgrpo.train`)
        result = module.main(rest)
    else:
        parser_usage = module.build_parser().format_usage().strip()
        result = call_reporting_errors(module.main, rest, prog=f"seedgrpo {command}", usage_text=parser_usage)
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return 0  # eval and demo return their results, not a code


if __name__ == "__main__":
    sys.exit(main())
