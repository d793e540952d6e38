"""The trainer's side of `generation_mode: server`: a RolloutEngine whose completions come from
`seedgrpo serve`.

    engine = ServerRolloutEngine(model=policy.model, tokenizer=tok, sampling=..., config=config)
    batch = engine.generate(prompts, num_generations=8, row_seeds=seeds)      # synchronous
    engine.submit(key, prompts, 8, seeds); ...; batch, version = engine.result(key)   # asynchronous
    engine.sync_weights()                                                     # after each optimizer step

With no `server_host` the engine starts its own server process beside the trainer (`python -m seedgrpo.cli
serve`, the trainer's config, its thread count unless `server_threads`, a random authkey) and stops it in
`close()`; the server also exits on its own when the trainer dies. With `server_host` it connects to a server
started separately (authkey from SEEDGRPO_SERVER_AUTHKEY on both sides).

Weights: at connect (version 0) and after each optimizer step (version + 1) the trainer streams its
parameters in buckets of about `server_bucket_mb`; under ZeRO-3 each bucket is gathered, copied to the CPU and
sent before the next is gathered, so no rank ever holds the full model beyond its shards and one bucket. LoRA:
the merged weights under the base names, as the colocated vLLM path pushes them (rollout/vllm.py). Every
weights message goes down the same ordered socket as the requests, so a request is sampled with the weights
pushed before it: the version each batch carries is decided by the trainer, not by timing.
`server_debug_checksum` has the server hash its weights after every push and compares them with the
trainer's (bitwise).

Several servers (`num_servers` auto-started, or `server_host: gen1:8765,gen2:8765`): each request's prompts
are split between them in contiguous shares of whole groups and the replies joined in order (rows are
seeded: the samples are those of one server); every weight push goes to each.

Several training ranks: rank 0 holds the connections; the others hand it their prompts and seeds
(`gather_object`) and receive their rows back (`scatter_object_list`); all ranks take part in the gathers of a
weight push (tested with two CPU ranks; not on GPUs).

Failures end the run with one line (GenerationServerError is a ConnectionError, which the command line reports
without a traceback): a dead server within about a second (the socket closes; an auto-started server's exit
is polled), a silent one after `server_timeout` seconds, and at connect a bad address, a wrong authkey, a
server used by another run or one speaking another protocol version.
"""
from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from multiprocessing.connection import Client

import torch

from .. import dist
from ..modeling.model_access import gathered, has_lora, lora_merged_weights, unwrap, weight_buckets
from ..modeling.scoring import score_completions
from .base import RolloutBatch, RolloutEngine, SamplingSettings, expand_rows, pad_token_id
from .server import AUTHKEY_ENV, PROTOCOL, READY, WeightsChecksum, authkey, recv, send

_POLL_S = 0.5          # how often a waiting trainer checks that its auto-started server is still alive
_CONNECT_WAIT_S = 60   # at most this long (or server_timeout, if shorter) for a refused address to open


class GenerationServerError(ConnectionError):
    """The generation server failed, vanished or refused this run (one line, no traceback on the CLI)."""


class ServerRolloutEngine(RolloutEngine):
    exact_logprobs = False  # sampled by another process's KV-cached forward: the trainer rescores as for hf

    def __init__(self, *, model, tokenizer, sampling: SamplingSettings, config):
        self.model, self.tokenizer, self.sampling, self.config = model, tokenizer, sampling, config
        self.timeout = config.server_timeout
        self.version = 0                       # weight pushes so far, minus one: the policy version
        self._rows: dict = {}                  # request key -> each rank's row count (several ranks)
        self._shares: dict = {}                # request key -> prompts sent to each server
        self._submitted: dict = {}             # request key -> the version current when it was sent
        self._links: list[_ServerLink] = []
        self._config_path = None
        self._sync_key = 0
        try:
            if dist.is_main():
                if config.server_host is None:
                    self._start_local_servers(config.num_servers)
                else:
                    from ..training.config import server_addresses

                    for host, port in server_addresses(config.server_host, config.server_port):
                        self._links.append(_ServerLink(self, (host, port), authkey()))
                for link in self._links:
                    link.connect()
            self._push_weights(reply=True)     # version 0: the servers sample from exactly our weights
        except BaseException:
            self.close()  # an auto-started server does not outlive a failed start
            raise

    # ------------------------------------------------------------------------------------------ generate
    def generate(self, prompts, *, num_generations, row_seeds, with_hidden=False,
                 progress=None) -> RolloutBatch:
        self._sync_key += 1
        key = ("sync", self._sync_key)
        self.submit(key, prompts, num_generations, row_seeds)
        batch, _ = self.result(key, with_hidden=with_hidden)
        if progress is not None:
            progress.update(len(row_seeds))
        return batch

    def submit(self, key, prompts, num_generations: int, row_seeds: list[int]) -> None:
        """Queue a request on the servers (returns at once); `result(key)` waits for it. With several
        servers each takes a contiguous share of the prompts (whole groups: rows are seeded, so who samples
        a row does not change it)."""
        expand_rows(prompts, num_generations, row_seeds)  # one seed per row, checked here
        self._submitted[key] = self.version
        parts = _gather_to_rank0((prompts, row_seeds))
        if not dist.is_main():
            return
        self._rows[key] = [len(seeds) for _, seeds in parts]
        all_prompts = [p for prompts_, _ in parts for p in prompts_]
        all_seeds = [s for _, seeds in parts for s in seeds]
        shares = _even_shares(len(all_prompts), len(self._links))
        self._shares[key] = shares
        start = 0
        for link, count in zip(self._links, shares):
            if count:
                rows = slice(start * num_generations, (start + count) * num_generations)
                link.send(dict(kind="generate", id=key, prompts=all_prompts[start:start + count],
                               num_generations=num_generations, row_seeds=all_seeds[rows],
                               sampling=asdict(self.sampling)))
            start += count

    def result(self, key, *, with_hidden: bool = False):
        """(RolloutBatch, the policy version that sampled it) of request `key`; waits for it."""
        submitted = self._submitted.pop(key)
        mine = None
        if dist.is_main():
            replies = [link.wait(key) for link, count in zip(self._links, self._shares.pop(key)) if count]
            for reply in replies:
                if reply["version"] != submitted:
                    raise GenerationServerError(f"a server sampled request {key} with weights version "
                                                f"{reply['version']}, expected {submitted}: out of order")
            mine = _split_rows(_join_replies(replies, pad_token_id(self.tokenizer)), self._rows.pop(key))
        batch = _to_batch(_scatter_from_rank0(mine))
        device = next(unwrap(self.model).parameters()).device
        for name in _FIELDS:
            setattr(batch, name, getattr(batch, name).to(device))
        if with_hidden:  # hidden states of the training model (one forward), as the vLLM engine does
            logprobs, batch.hidden = score_completions(self.model, batch.prompt_ids, batch.prompt_mask,
                                                       batch.completion_ids, batch.completion_mask,
                                                       self.sampling.temperature, with_hidden=True)
            if submitted == self.version:  # on-policy: the hf engine's with_hidden log-probs, exactly
                batch.logprobs = logprobs
        return batch, submitted

    # --------------------------------------------------------------------------------------- weight sync
    @torch.no_grad()
    def sync_weights(self) -> None:
        self.version += 1
        self._push_weights(reply=self.config.server_debug_checksum)

    def _push_weights(self, *, reply: bool) -> None:
        """Every bucket to every server (gathered once); with `reply`, each server's checksum is compared."""
        checksum = WeightsChecksum() if reply else None
        first = True
        for bucket in self._weight_buckets():
            if dist.is_main():
                for link in self._links:
                    link.send(dict(kind="weights", version=self.version, tensors=bucket, first=first,
                                   last=False))
                if checksum is not None:
                    for name, tensor in bucket:
                        checksum.update(name, tensor)
            first = False
        if not dist.is_main():
            return
        for link in self._links:
            link.send(dict(kind="weights", version=self.version, tensors=[], first=first, last=True,
                           reply=reply, checksum=reply))
        if reply:
            for link in self._links:
                answer = link.wait(("weights", self.version))
                if answer["checksum"] != checksum.hexdigest():
                    raise GenerationServerError(f"after weight push {self.version} the weights of "
                                                f"{link.where} differ from the trainer's (sha256 "
                                                f"{answer['checksum'][:12]} vs {checksum.hexdigest()[:12]})")

    def verify_weights(self) -> None:
        """Compare each server's weights of the last push with the trainer's current ones (bitwise)."""
        ours = WeightsChecksum()
        for bucket in self._weight_buckets():
            for name, tensor in bucket:
                ours.update(name, tensor)
        if not dist.is_main():
            return
        self._sync_key += 1
        key = ("checksum", self._sync_key)
        for link in self._links:
            link.send(dict(kind="checksum", id=key))
        for link in self._links:
            theirs = link.wait(key)["checksum"]
            if theirs != ours.hexdigest():
                raise GenerationServerError(f"the weights of {link.where} differ from the trainer's at "
                                            f"version {self.version} (sha256 {theirs[:12]} vs "
                                            f"{ours.hexdigest()[:12]})")

    def _weight_buckets(self):
        """Lists of (name, CPU tensor) of about server_bucket_mb each (rank 0's lists; others' are empty).
        Each source bucket is gathered only while it is copied out (ZeRO-3), LoRA merged on the fly."""
        module = unwrap(self.model)
        bucket_bytes = self.config.server_bucket_mb * 2 ** 20
        if has_lora(module):
            source = lora_merged_weights(module, bucket_bytes)
        else:
            source = _gathered_parameters(module, bucket_bytes)
        bucket, size = [], 0
        for name, tensor in source:
            if dist.is_main():
                bucket.append((name, tensor.detach().to("cpu", copy=True)))
            size += tensor.numel() * tensor.element_size()
            if size >= bucket_bytes:
                yield bucket
                bucket, size = [], 0
        if bucket or size:
            yield bucket

    # ------------------------------------------------------------------------------------ auto-started
    def _start_local_servers(self, count: int) -> None:
        """`count` x `seedgrpo serve` beside the trainer, each on a free local port, one random authkey."""
        from ..training.config import save_config

        key = secrets.token_hex(16)
        handle, self._config_path = tempfile.mkstemp(prefix="seedgrpo-serve-", suffix=".yaml")
        os.close(handle)
        save_config(self.config, self._config_path)
        threads = self.config.server_threads or torch.get_num_threads()
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE")}
        env[AUTHKEY_ENV] = key
        command = [sys.executable, "-m", "seedgrpo.cli", "serve", "--config", self._config_path,
                   "--host", "127.0.0.1", "--port", "0", "--num_threads", str(threads),
                   "--parent_pid", str(os.getpid()), "--resume", "null"]
        for _ in range(count):
            child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, text=True)
            self._links.append(_ServerLink(self, None, key.encode(), child=child))
        for link in self._links:
            link.address = link.wait_until_listening()

    def close(self) -> None:
        for link in self._links:
            link.close()
        self._links = []
        if self._config_path is not None:
            os.unlink(self._config_path)
            self._config_path = None


class _ServerLink:
    """One generation server: its connection (and process, when auto-started), replies stashed by id."""

    def __init__(self, engine: ServerRolloutEngine, address, key: bytes, child=None):
        self.engine, self.address, self.key, self.child = engine, address, key, child
        self.conn = None
        self.stash: dict = {}
        self.lines: list[str] = []
        if child is not None:  # drained to the end, so the child never blocks on a full pipe
            threading.Thread(target=_read_lines, args=(child.stdout, self.lines), daemon=True).start()

    @property
    def where(self) -> str:
        which = "the auto-started server" if self.child is not None else "the server"
        return f"{which} at {self.address[0]}:{self.address[1]}" if self.address else which

    def wait_until_listening(self):
        deadline = time.monotonic() + self.engine.timeout
        while not any(line.startswith(READY) for line in self.lines):
            if self.child.poll() is not None:
                raise GenerationServerError(f"the auto-started generation server exited with code "
                                            f"{self.child.returncode} before listening (its error is above)")
            if time.monotonic() > deadline:
                raise GenerationServerError(f"the auto-started generation server did not listen within "
                                            f"server_timeout={self.engine.timeout:g} s")
            time.sleep(0.05)
        _, host, port = next(line for line in self.lines if line.startswith(READY)).split()
        return host, int(port)

    def connect(self) -> None:
        host, port = self.address
        wait = min(self.engine.timeout, _CONNECT_WAIT_S)
        deadline, told = time.monotonic() + wait, False
        while True:
            try:
                self.conn = _client_within((host, port), self.key, self.engine.timeout)
                break
            except socket.gaierror as error:
                raise GenerationServerError(f"server_host={host!r}: not a reachable host ({error}); give the "
                                            "generation server's host name or address") from None
            except (ConnectionRefusedError, TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise GenerationServerError(
                        f"no generation server at {host}:{port} ({type(error).__name__} for {wait:g} s); "
                        "start one with `seedgrpo serve --config ... --port PORT`, or leave server_host "
                        "unset to start one beside the trainer") from None
                if not told:
                    dist.print0(f"waiting up to {wait:g} s for the generation server at {host}:{port}")
                    told = True
                time.sleep(0.5)
            except Exception as error:  # AuthenticationError and its relatives
                if "AuthenticationError" in type(error).__name__ or "digest" in str(error):
                    raise GenerationServerError(f"the server at {host}:{port} refused our authkey; set "
                                                f"the same {AUTHKEY_ENV} for the server and the trainer"
                                                ) from None
                raise
        run_id = os.path.abspath(self.engine.config.output_dir)
        self.send(dict(kind="hello", protocol=PROTOCOL, run_id=run_id))
        hello = self.wait("hello")
        dist.print0(f"generation server: pid {hello['pid']} at {host}:{port}, {hello['engine']} engine, "
                    f"{hello['threads']} threads")

    def send(self, message: dict) -> None:
        try:
            send(self.conn, message)
        except OSError as error:
            what = f"sending to it failed ({type(error).__name__})"
            raise GenerationServerError(self.gone(what)) from None

    def wait(self, key) -> dict:
        """The reply with id `key` (others are stashed); an error reply, a closed socket, a dead auto-started
        server or `server_timeout` seconds of silence raise GenerationServerError."""
        deadline = time.monotonic() + self.engine.timeout
        while key not in self.stash:
            if self.child is not None and self.child.poll() is not None:
                what = f"the server process exited (code {self.child.returncode})"
                raise GenerationServerError(self.gone(what))
            try:
                reply = recv(self.conn) if self.conn.poll(_POLL_S) else None
            except (EOFError, OSError) as error:
                what = f"the connection closed ({type(error).__name__})"
                raise GenerationServerError(self.gone(what)) from None
            if reply is None:
                if time.monotonic() > deadline:
                    what = f"no reply within server_timeout={self.engine.timeout:g} s"
                    raise GenerationServerError(self.gone(what))
                continue
            if reply["kind"] == "error":
                raise GenerationServerError(f"generation server: {reply['message']}")
            self.stash["hello" if reply["kind"] == "hello_ok" else reply["id"]] = reply
        return self.stash.pop(key)

    def gone(self, what: str) -> str:
        return (f"generation server failed at policy version {self.engine.version}: {what} ({self.where}); "
                "the run stops here; resume with --resume auto once it is back")

    def close(self) -> None:
        if self.conn is not None:
            try:
                send(self.conn, dict(kind="bye"))
                self.conn.close()
            except OSError:
                pass
            self.conn = None
        if self.child is not None:
            self.child.terminate()
            try:
                self.child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.child.kill()
                self.child.wait()
            self.child = None


def _read_lines(stream, lines: list) -> None:
    for line in stream:  # drained to the end, so the child never blocks on a full pipe
        lines.append(line.strip())


def _client_within(address, key: bytes, timeout: float):
    """multiprocessing's Client (connect + authentication), which has no timeout of its own: run in a thread,
    so that a port that accepts but never authenticates (not a seedgrpo server) cannot hang the trainer."""
    outcome: list = []

    def connect():
        try:
            outcome.append(Client(address, authkey=key))
        except BaseException as error:  # handed to the caller's thread
            outcome.append(error)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise GenerationServerError(f"{address[0]}:{address[1]} accepted the connection but did not answer "
                                    f"the authentication within {timeout:g} s: is it a seedgrpo serve?")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def _gather_to_rank0(obj) -> list | None:
    """[every rank's obj] on rank 0 (None elsewhere); [obj] in one process."""
    if dist.world_size() == 1:
        return [obj]
    import torch.distributed as torch_dist

    out = [None] * dist.world_size() if dist.is_main() else None
    torch_dist.gather_object(obj, out, dst=0)
    return out


def _scatter_from_rank0(parts: list | None):
    """This rank's entry of rank 0's `parts`."""
    if dist.world_size() == 1:
        return parts[0]
    import torch.distributed as torch_dist

    out = [None]
    torch_dist.scatter_object_list(out, parts if dist.is_main() else None, src=0)
    return out[0]


def _gathered_parameters(module, bucket_bytes: float):
    for bucket in weight_buckets(module.named_parameters(), bucket_bytes):
        with gathered([p for _, p in bucket]):
            for name, param in bucket:
                yield name, param.data


_FIELDS = ("prompt_ids", "prompt_mask", "completion_ids", "completion_mask", "logprobs", "is_truncated")


def _split_rows(reply: dict, rows: list[int]) -> list[dict]:
    """One dict of batch fields per rank: consecutive rows, `rows[r]` of them for rank r."""
    parts, start = [], 0
    for count in rows:
        part = {name: reply[name][start:start + count] for name in _FIELDS}
        part["texts"] = reply["texts"][start:start + count]
        parts.append(part)
        start += count
    return parts


def _even_shares(total: int, parts: int) -> list[int]:
    """`total` split in `parts` contiguous counts differing by at most one (the first ones larger)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _join_replies(replies: list[dict], pad_id: int) -> dict:
    """Several servers' replies as one: rows in order, prompts left-padded and completions right-padded to
    the widest (as one engine pads a batch)."""
    if len(replies) == 1:
        return replies[0]
    prompt_width = max(r["prompt_ids"].shape[1] for r in replies)
    completion_width = max(r["completion_ids"].shape[1] for r in replies)

    def pad(tensor, width, value, left):
        extra = width - tensor.shape[1]
        return torch.nn.functional.pad(tensor, (extra, 0) if left else (0, extra), value=value)

    joined = {"texts": [t for r in replies for t in r["texts"]],
              "is_truncated": torch.cat([r["is_truncated"] for r in replies])}
    for name, width, value, left in (("prompt_ids", prompt_width, pad_id, True),
                                     ("prompt_mask", prompt_width, 0, True),
                                     ("completion_ids", completion_width, pad_id, False),
                                     ("completion_mask", completion_width, 0, False),
                                     ("logprobs", completion_width, 0.0, False)):
        joined[name] = torch.cat([pad(r[name], width, value, left) for r in replies])
    return joined


def _to_batch(fields: dict) -> RolloutBatch:
    return RolloutBatch(**fields)
