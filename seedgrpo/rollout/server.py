"""`seedgrpo serve`: a generation server, the other half of `generation_mode: server` (client.py is the
trainer's).

    seedgrpo serve --config configs/tiny-cpu.yaml --port 8765             # then, elsewhere:
    seedgrpo train --config configs/tiny-cpu.yaml --generation_mode server --server_host HOST \
        --server_port 8765

The server builds the model the config names (`model`, `toy`, `dtype`; the weights it loads do not matter:
the trainer pushes its own before the first request) and a rollout engine (`rollout_engine`: hf here; vllm on
a GPU, untested). It talks to one training run at a time over a `multiprocessing.connection` socket
authenticated with a shared key (the environment variable SEEDGRPO_SERVER_AUTHKEY on both sides; the
auto-started server gets a random one). Messages are pickled dicts; pickle runs code, so the key is what
keeps strangers out: bind to 127.0.0.1 (the default) unless the network is trusted.

Messages, handled strictly in the order they arrive (a reader thread per connection queues them, so a
weight push is received while a generation runs, and applied after it):

    hello     {protocol, run_id}                    -> hello_ok | error (protocol mismatch, server in use)
    weights   {version, tensors: [(name, tensor)], first, last, reply}   (reply: answer weights_ok + checksum)
    generate  {id, prompts, num_generations, row_seeds, sampling}  -> result {id, version, batch} | error
    checksum  {id}                                  -> checksum of the weights of the last push, in its order
    bye       {}                                    -> the run lets go of the server

Because the queue is in order, the weights a request is sampled with are those pushed before it was sent:
the trainer decides the staleness of every batch, and a run is deterministic whatever the timing.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import queue
import signal
import sys
import threading
import time
from multiprocessing.connection import Listener

import torch

PROTOCOL = 1
AUTHKEY_ENV = "SEEDGRPO_SERVER_AUTHKEY"
_DEFAULT_AUTHKEY = "seedgrpo-serve"
READY = "SEEDGRPO_SERVE_READY"
USAGE = ("usage: seedgrpo serve --config CONFIG.yaml [--host 127.0.0.1] [--port PORT] [--num_threads N] "
         "[--key value ...] [--debug]")


def authkey() -> bytes:
    return os.environ.get(AUTHKEY_ENV, _DEFAULT_AUTHKEY).encode()


def send(conn, message: dict) -> None:
    conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def recv(conn) -> dict:
    return pickle.loads(conn.recv_bytes())


class WeightsChecksum:
    """SHA-256 over (name, dtype, shape, bytes) of each tensor in order: equal iff the weights are bitwise."""

    def __init__(self):
        self._hash = hashlib.sha256()

    def update(self, name: str, tensor: torch.Tensor) -> None:
        tensor = tensor.detach().to("cpu").contiguous()
        self._hash.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        self._hash.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _Client:
    """One connection: its reader thread queues (self, message); None when the connection ends."""

    def __init__(self, conn, inbox: queue.Queue):
        self.conn, self.run_id, self.alive = conn, None, True
        threading.Thread(target=self._read, args=(inbox,), daemon=True).start()

    def _read(self, inbox):
        while True:
            try:
                message = recv(self.conn)
            except (EOFError, OSError, pickle.UnpicklingError):
                self.alive = False
                inbox.put((self, None))
                return
            inbox.put((self, message))

    def reply(self, message: dict) -> None:
        try:
            send(self.conn, message)
        except OSError:
            self.alive = False  # the trainer went away; its reader thread reports it


class GenerationServer:
    def __init__(self, config, *, host: str = "127.0.0.1", port: int = 0, threads: int | None = None,
                 parent_pid: int | None = None):
        from ..training.engine import load_model, load_tokenizer
        from .base import SamplingSettings

        if threads:
            torch.set_num_threads(threads)
        self.config, self.parent_pid = config, parent_pid
        self.tokenizer = load_tokenizer(config)
        self.module = load_model(config, self.tokenizer).eval().requires_grad_(False)
        if torch.cuda.is_available() and config.rollout_engine == "hf":  # GPU only, untested
            self.module.to("cuda")
        self.params = dict(self.module.named_parameters())
        sampling = SamplingSettings(max_prompt_length=config.max_prompt_length,
                                    max_completion_length=config.max_completion_length,
                                    temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)
        self.engine = self._make_engine(sampling)
        self.version = None            # no weights pushed yet: generate refuses until the first push
        self.pushed_names: list[str] = []
        self.error = None              # a failed push, reported to the next request
        self.requests_served = 0
        self.active: _Client | None = None
        self.inbox: queue.Queue = queue.Queue()
        self.listener = Listener((host, port), authkey=authkey())
        self.address = self.listener.address

    def _make_engine(self, sampling):
        c = self.config
        if c.rollout_engine == "vllm":  # GPU only, untested: vLLM pulls the pushed weights from self.module
            from .vllm import VLLMRolloutEngine

            return VLLMRolloutEngine(model=self.module, tokenizer=self.tokenizer, sampling=sampling,
                                     model_path=c.model, vllm_config=c.vllm, seed=c.seed)
        from .hf import HFRolloutEngine

        return HFRolloutEngine(model=self.module, tokenizer=self.tokenizer, sampling=sampling,
                               gather_for_generation=False, generation_batch_size=c.generation_batch_size,
                               share_prompt_prefill=c.share_prompt_prefill, decode_loop=c.decode_loop)

    # ------------------------------------------------------------------------------------------- loop
    def serve_forever(self) -> None:
        threading.Thread(target=self._accept, daemon=True).start()
        while True:
            try:
                client, message = self.inbox.get(timeout=1.0)
            except queue.Empty:
                if self.parent_pid and os.getppid() != self.parent_pid:
                    return  # the trainer that started us is gone (killed): do not outlive it
                continue
            self._handle(client, message)

    def _accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except Exception:  # a wrong authkey (AuthenticationError), a probe, a reset: keep listening
                continue
            _Client(conn, self.inbox)

    def _handle(self, client: _Client, message) -> None:
        if message is None:  # the connection ended
            if client is self.active:
                self.active = None
            return
        kind = message.get("kind")
        if kind == "hello":
            self._hello(client, message)
            return
        if client is not self.active or not client.alive:
            return  # a rejected run's or a closed connection's leftovers
        try:
            if kind == "weights":
                self._weights(client, message)
            elif kind == "generate":
                self._generate(client, message)
            elif kind == "checksum":
                client.reply(dict(kind="checksum", id=message["id"], checksum=self._checksum()))
            elif kind == "bye":
                self.active = None
                client.conn.close()
            else:
                raise ValueError(f"unknown message kind {kind!r}")
        except Exception as error:  # reported to the trainer as one line; the server keeps serving
            client.reply(dict(kind="error", id=message.get("id"), message=f"{type(error).__name__}: {error}"))

    def _hello(self, client: _Client, message: dict) -> None:
        if message.get("protocol") != PROTOCOL:
            client.reply(dict(kind="error", message=f"protocol version mismatch: the server speaks "
                                                    f"{PROTOCOL}, the trainer {message.get('protocol')}; run "
                                                    "the same seedgrpo version on both sides"))
            return
        run_id = message["run_id"]
        if self.active is not None and self.active.alive and self.active.run_id != run_id:
            client.reply(dict(kind="error", message=f"the server is in use by another run "
                                                    f"({self.active.run_id}); start another server or stop "
                                                    "that run"))
            return
        if self.active is not None and self.active is not client:
            self.active.alive = False  # the same run reconnecting (e.g. resumed): the old link is stale
        client.run_id, self.active = run_id, client
        self.version, self.error = None, None
        client.reply(dict(kind="hello_ok", pid=os.getpid(), engine=self.config.rollout_engine,
                          threads=torch.get_num_threads()))

    def _weights(self, client: _Client, message: dict) -> None:
        if message["first"]:
            self.pushed_names, self.error = [], None
        try:
            for name, tensor in message["tensors"]:
                param = self.params.get(name)
                if param is None or param.shape != tensor.shape:
                    have = None if param is None else tuple(param.shape)
                    raise ValueError(f"the trainer pushed {name} {tuple(tensor.shape)} but the server's "
                                     f"model has {have}: start the server with the trainer's model config")
                param.data.copy_(tensor)
                self.pushed_names.append(name)
        except ValueError as error:
            self.error = str(error)
        if message["last"]:
            self.version = message["version"]
            if hasattr(self.engine, "_weights_current"):
                self.engine._weights_current = False  # vLLM: pull the new weights from self.module
            if message["reply"]:
                if self.error:
                    client.reply(dict(kind="error", id=("weights", self.version), message=self.error))
                else:
                    client.reply(dict(kind="weights_ok", id=("weights", self.version),
                                      checksum=self._checksum() if message.get("checksum") else None))

    def _checksum(self) -> str:
        checksum = WeightsChecksum()
        for name in self.pushed_names:
            checksum.update(name, self.params[name])
        return checksum.hexdigest()

    def _generate(self, client: _Client, message: dict) -> None:
        from ..training.faults import fault_point
        from .base import SamplingSettings

        if self.error:
            raise ValueError(self.error)
        if self.version is None:
            raise ValueError("no weights pushed yet")
        self.requests_served += 1
        fault_point("serve_generate", self.requests_served)  # @N: the server's N-th request
        self.engine.sampling = SamplingSettings(**message["sampling"])
        started = time.perf_counter()
        batch = self.engine.generate(message["prompts"], num_generations=message["num_generations"],
                                     row_seeds=message["row_seeds"])
        names = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "logprobs", "is_truncated")
        fields = {name: getattr(batch, name).cpu() for name in names}
        client.reply(dict(kind="result", id=message["id"], version=self.version, texts=batch.texts,
                          seconds=time.perf_counter() - started, **fields))


# ------------------------------------------------------------------------------------------------- command
def parse_args(argv: list[str]):
    """(config path, host, port, threads, parent pid, remaining `--key value` overrides)."""
    mine = {"--config": None, "-c": None, "--host": "127.0.0.1", "--port": None, "--num_threads": None,
            "--parent_pid": None}
    rest, i = [], 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in ("-h", "--help"):
            print(__doc__ + "\n" + USAGE)
            raise SystemExit(0)
        if name in mine:
            if not eq:
                if i + 1 >= len(argv):
                    raise ValueError(f"{name} needs a value")
                value, i = argv[i + 1], i + 1
            mine[name] = value
        else:
            rest.append(argv[i])
        i += 1
    numbers = {}
    for key in ("--port", "--num_threads", "--parent_pid"):
        if mine[key] is not None and not str(mine[key]).isdigit():
            raise ValueError(f"{key}={mine[key]!r} must be a non-negative integer")
        numbers[key] = int(mine[key]) if mine[key] is not None else None
    return (mine["--config"] or mine["-c"], mine["--host"], numbers["--port"], numbers["--num_threads"],
            numbers["--parent_pid"], rest)


def serve(argv: list[str]) -> int:
    from ..training.config import load_config

    config_path, host, port, threads, parent_pid, overrides = parse_args(argv)
    config = load_config(config_path, overrides)
    server = GenerationServer(config, host=host, port=config.server_port if port is None else port,
                              threads=threads, parent_pid=parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # The one line a starting trainer waits for (its actual port, when --port 0 asked for a free one).
    print(f"{READY} {server.address[0]} {server.address[1]}", flush=True)
    print(f"seedgrpo serve: {config.rollout_engine} engine, model {config.model}, listening on "
          f"{server.address[0]}:{server.address[1]}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


def main(argv: list[str] | None = None) -> int:
    from ..cli import call_reporting_errors

    argv = sys.argv[1:] if argv is None else list(argv)
    return call_reporting_errors(serve, argv, prog="seedgrpo serve", usage_text=USAGE)
