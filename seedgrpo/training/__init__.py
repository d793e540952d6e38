"""Training: the config (every knob, its default, range and help), the trainer and its engines (plain torch,
DeepSpeed ZeRO-3), reward functions, row skipping, dynamic sampling, checkpoints, the metrics log, the console,
host memory and fault points. Public names are exported by the top-level package (`seedgrpo.Trainer`,
`seedgrpo.TrainConfig`, `seedgrpo.load_config`); import the modules themselves inside the package."""
