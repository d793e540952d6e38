"""`python -m seedgrpo.train --config X.yaml [--key value ...]`: the training entry point.

    python -m seedgrpo.train --config configs/tiny-cpu.yaml --max_steps 5          # one process
    DS_ACCELERATOR=cpu deepspeed --num_gpus 2 --module seedgrpo.train --config configs/tiny-cpu.yaml \\
        --deepspeed_config configs/ds_zero3_cpu.json                                 # 2 CPU ranks
    deepspeed --num_gpus 8 --module seedgrpo.train --config configs/qwen2.5-math-7b.yaml
    deepspeed --hostfile hosts --num_nodes 2 --num_gpus 8 --module seedgrpo.train --config ...

Every `--key value` overrides the YAML (dotted keys reach sections: `--data.limit 100`); `--resume auto`
continues from the latest checkpoint in output_dir. A bad key or value stops the run before any work,
with a one-line error and the usage; so do a missing file, a bad JSON line, a model that is neither a
directory nor a model id, and a missing optional package (`--debug` shows the traceback). Launchers' own
`--local_rank` argument is accepted and ignored (LOCAL_RANK is read from the environment).
"""
from __future__ import annotations

import sys

USAGE = "usage: python -m seedgrpo.train --config CONFIG.yaml [--key value ...] [--resume auto|DIR] [--debug]"


def parse_args(argv: list[str]) -> tuple[str | None, list[str]]:
    """(config path, remaining `--key value` overrides), without the launcher's --local_rank."""
    config_path, rest, i = None, [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            print(__doc__ + "\n" + USAGE)
            raise SystemExit(0)
        name, eq, value = arg.partition("=")
        if name in ("--config", "-c", "--local_rank", "--local-rank"):
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{name} needs a value")
                value, i = argv[i + 1], i + 1
            if name in ("--config", "-c"):
                config_path = value
        else:
            rest.append(arg)
        i += 1
    return config_path, rest


def train(argv: list[str]) -> int:
    from .training.config import load_config
    from .training.trainer import Trainer

    config_path, overrides = parse_args(argv)
    Trainer(load_config(config_path, overrides)).train()
    return 0


def main(argv: list[str] | None = None) -> int:
    from .cli import call_reporting_errors

    argv = sys.argv[1:] if argv is None else list(argv)
    return call_reporting_errors(train, argv, prog="seedgrpo train", usage_text=USAGE)


if __name__ == "__main__":
    sys.exit(main())
