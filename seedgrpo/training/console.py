"""What a training run prints on rank 0: one progress bar over the run, or one line per logged step, and a
short summary at the end.

    console = RunConsole(config, start_step=0)
    console.step(step, metrics)          # after each step's metrics
    console.finish(step, stopped=False)  # at the last step (or a SIGTERM stop): close the bar, print the summary

`progress: true` (the default) shows one bar over `max_steps` with the live reward, accuracy, semantic
entropy (SE), advantage scale, tokens/s and tqdm's ETA; `progress: detailed` adds each step's rollout and
update bars (the trainer's `_progress`); `progress: false` prints a line every `logging_steps` instead.

Every bar of the package comes from `progress_bar`: tqdm on a terminal; when the output is not a terminal
(a log file, a pipe, a CI job) the same bar text is written as whole lines, at most one every
`LINE_INTERVAL_S` seconds plus the last, instead of thousands of carriage-return redraws in one line.
"""
from __future__ import annotations

import math
import sys
import time

from .. import dist

# metric key -> (bar label, format)
LIVE = {"reward_mean": ("reward", "{:.3f}"), "accuracy": ("acc", "{:.1%}"),
        "semantic_entropy_mean": ("SE", "{:.3f}"), "advantage_scale_mean": ("scale", "{:.3f}"),
        "tokens_per_s": ("tok/s", "{:.0f}")}


LINE_INTERVAL_S = 10.0  # off a terminal: fewest seconds between two progress lines (the last always prints)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def progress_bar(iterable=None, *, file=None, **kwargs):
    """A tqdm bar on a terminal, a `LineProgress` (one whole line per shown update) anywhere else."""
    from tqdm.auto import tqdm

    if _is_terminal(file or sys.stderr):
        return tqdm(iterable, file=file, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    kwargs.setdefault("mininterval", LINE_INTERVAL_S)
    return _line_progress_class()(iterable, file=file, **kwargs)


_LINE_PROGRESS = None


def _line_progress_class():
    """tqdm with `display` writing "<bar text>\n" (tqdm itself writes "\r<bar text>" over the last one)."""
    global _LINE_PROGRESS
    if _LINE_PROGRESS is None:
        from tqdm import tqdm

        class LineProgress(tqdm):
            def display(self, msg=None, pos=None):
                line = self.__str__() if msg is None else msg
                # tqdm clears a leave=False bar with an empty message; a line log has nothing to clear
                if line and line != getattr(self, "_last_line", None):
                    self.fp.write(line + "\n")
                    self.fp.flush()
                    self._last_line = line
                return True

            def close(self):
                """The last state as a line, always (tqdm's close adds "\n" or "\r" to the redrawn line)."""
                if getattr(self, "disable", True):
                    return
                self.display()
                self.disable = True
                self._decr_instances(self)

        _LINE_PROGRESS = LineProgress
    return _LINE_PROGRESS


def _format(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "nan"
    return spec.format(value)


class RunConsole:
    def __init__(self, config, *, start_step: int = 0, file=None):
        self.config, self.file = config, file
        self.enabled = dist.is_main()
        self.started, self.start_step = time.perf_counter(), start_step
        self.first: dict | None = None
        self.last: dict = {}
        self.tokens_per_s: list[float] = []
        self.bar = None
        if self.enabled and config.progress:
            self.bar = progress_bar(total=config.max_steps, initial=start_step, desc="train", unit="step",
                            dynamic_ncols=True, file=file, smoothing=0.1)

    def step(self, step: int, metrics: dict) -> None:
        if not self.enabled:
            return
        if self.first is None:
            self.first = dict(metrics)
        self.last = dict(metrics)
        if math.isfinite(metrics.get("tokens_per_s", math.nan)):
            self.tokens_per_s.append(metrics["tokens_per_s"])
        if self.bar is not None:
            self.bar.set_postfix_str("  ".join(f"{label} {_format(metrics.get(key), spec)}"
                                               for key, (label, spec) in LIVE.items()), refresh=False)
            self.bar.update(step - self.bar.n)
        elif step % self.config.logging_steps == 0 or step == self.config.max_steps:
            print(f"step {step}/{self.config.max_steps}  loss {metrics['loss']:.4f}  "
                  + "  ".join(f"{label} {_format(metrics.get(key), spec)}" for key, (label, spec) in LIVE.items())
                  + f"  len {metrics['completion_length']:.1f}  {metrics['step_time']:.2f}s",
                  file=self.file or sys.stdout, flush=True)

    def finish(self, step: int, *, stopped: bool = False) -> None:
        """Close the bar and print the summary (once)."""
        if not self.enabled or self.first is None:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        steps = step - self.start_step
        elapsed = time.perf_counter() - self.started
        first, last = self.first, self.last
        trend = "  ".join(f"{label} {_format(first.get(key), spec)} -> {_format(last.get(key), spec)}"
                          for key, (label, spec) in LIVE.items() if key != "tokens_per_s")
        speed = sum(self.tokens_per_s) / len(self.tokens_per_s) if self.tokens_per_s else math.nan
        how = f"stopped at step {step}/{self.config.max_steps}" if stopped else f"done: step {step}"
        print(f"{how}: {steps} steps in {_duration(elapsed)} ({elapsed / max(steps, 1):.2f} s/step, "
              f"{_format(speed, '{:.0f}')} tokens/s)\n  {trend}\n  run directory: {self.config.output_dir}",
              file=self.file or sys.stdout, flush=True)
        self.first = None


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
