"""Two ZeRO-3 ranks (CPU, gloo) agree on gathering the weights for generation when only one of them has the
memory for it: both take the sharded branch and finish. Ranks that decided apart would run unmatched
collectives (one all-gathers every parameter, the other runs generate's lock-step all-reduces) and hang;
the launch's timeout turns that into a failure.

Run as a test (this file launched as two rank processes, ~30 s on 2 busy cores); the `__main__` part is each rank.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _build_comm_op(monkeypatch) -> str:
    """DeepSpeed's CPU backend JIT-builds a shared-memory comm op on first use (~36 s), under a lock file. Build
    it here, in a cache of this interpreter's own (a build for another venv in a shared cache forces a rebuild
    and holds the lock meanwhile), so that the ranks only load it and a rank killed at the timeout below
    cannot leave the lock behind."""
    import deepspeed.ops
    from deepspeed.accelerator import get_accelerator

    extensions = str(Path.home() / ".cache" / "torch_extensions" / hashlib.sha1(sys.prefix.encode()).hexdigest()[:12])
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", extensions)
    builder = get_accelerator().create_op_builder("ShareMemCommBuilder")
    if builder is not None and deepspeed.ops.__compatible_ops__.get(builder.NAME, False):  # as DeepSpeed checks
        builder.load(verbose=False)
    return extensions


def test_ranks_take_the_same_generation_branch_when_one_lacks_memory(tmp_path, monkeypatch):
    from seedgrpo.dist import free_port

    env = dict(os.environ, DS_ACCELERATOR="cpu", PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", WORLD_SIZE="2",
               LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()),
               TORCH_EXTENSIONS_DIR=_build_comm_op(monkeypatch))
    jobs = []
    for rank in (0, 1):
        with open(tmp_path / f"rank{rank}.log", "w") as log:
            jobs.append(subprocess.Popen([sys.executable, __file__, str(tmp_path)], cwd=REPO, stdout=log,
                                         stderr=subprocess.STDOUT, env=dict(env, RANK=str(rank),
                                                                            LOCAL_RANK=str(rank))))
    deadline = time.monotonic() + 180
    try:
        for job in jobs:
            job.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        hung = [job for job in jobs if job.poll() is None]
        for job in hung:
            job.kill()
            job.wait()
    logs = "\n".join((tmp_path / f"rank{r}.log").read_text()[-2000:] for r in (0, 1))
    assert not hung, f"the ranks did not finish in 180 s (unmatched collectives hang):\n{logs}"
    assert [job.returncode for job in jobs] == [0, 0], logs
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["fits_locally"] for r in ranks] == [True, False]  # the two ranks saw different free memory
    assert [r["sharded"] for r in ranks] == [[True], [True]]    # ... and both generated sharded
    assert all(r["rows"] == 4 and r["finished"] for r in ranks)


def _rank_main(out_dir: str) -> None:
    from seedgrpo import dist
    from seedgrpo.training.config import load_config
    from seedgrpo.rollout import hf
    from seedgrpo.rollout.base import row_seeds
    from seedgrpo.training.trainer import Trainer

    config = load_config(None, {
        "prompt_template": "none", "max_prompt_length": 16, "max_completion_length": 6,
        "prompts_per_step": 4, "num_generations": 2, "per_device_train_batch_size": 4, "toy.layers": 2,
        "toy.hidden": 64, "toy.num_problems": 8, "progress": False, "tensorboard": False,
        "output_dir": str(Path(out_dir) / "run"), "deepspeed_config": str(REPO / "configs/ds_zero3_cpu.json")})
    trainer = Trainer(config)
    rank = dist.rank()
    # Rank 1 is made to believe its GPU is full, rank 0 that it has plenty of room.
    hf.free_accelerator_bytes = lambda: 10 ** 15 if rank == 0 else 0
    engine = trainer.rollout
    params = list(hf.unwrap(engine.model).parameters())
    full_bytes = sum(hf.full_numel(p) * p.element_size() for p in params)
    fits_locally = full_bytes < hf._GATHER_MEMORY_SHARE * hf.free_accelerator_bytes()
    sharded = []
    generate_chunk = engine._generate_chunk

    def spy(generator, prompt_ids, prompt_mask, seeds, is_sharded, with_hidden):
        sharded.append(is_sharded)
        return generate_chunk(generator, prompt_ids, prompt_mask, seeds, is_sharded, with_hidden)

    engine._generate_chunk = spy
    prompts = ["12+34=", "7*8="]
    batch = engine.generate(prompts, num_generations=2, row_seeds=row_seeds(0, 1, [2 * rank, 2 * rank + 1], 2))
    dist.barrier()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(
        {"fits_locally": fits_locally, "sharded": sharded, "rows": len(batch.texts), "finished": True}))


if __name__ == "__main__":
    _rank_main(sys.argv[1])
