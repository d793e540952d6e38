"""How many logit rows a chunk of the fused-linear / selective paths holds (``_utils.chunk_rows``): sized by
the bytes the chunk really holds (bf16 logits are 2 bytes; fp16 adds its float32 gradient buffer), and with
the default budget on a GPU at least MIN_CHUNK_ROWS_GPU rows, so that the loss kernel fills the SMs. Pure
arithmetic on a device *type*: no GPU needed."""
import pytest
import torch

from seedgrpo.kernels import _utils
from seedgrpo.kernels._utils import chunk_logit_bytes, chunk_rows

CUDA, CPU = torch.device("cuda"), torch.device("cpu")
QWEN_VOCAB, LLAMA3_VOCAB = 151936, 128256


def test_bytes_per_logit_follow_the_dtype():
    assert chunk_logit_bytes(torch.bfloat16, with_grad=True) == 2  # the gradient overwrites the logits
    assert chunk_logit_bytes(torch.float32, with_grad=True) == 4
    assert chunk_logit_bytes(torch.float16, with_grad=True) == 2 + 4  # + the float32 gradient buffer
    assert chunk_logit_bytes(torch.float16, with_grad=False) == 2


@pytest.mark.parametrize("vocab", [QWEN_VOCAB, LLAMA3_VOCAB])
def test_gpu_chunks_of_a_large_vocabulary_have_at_least_the_minimum_rows(vocab):
    for dtype in (torch.bfloat16, torch.float32, torch.float16):
        rows = chunk_rows(10**6, vocab, CUDA, logit_bytes=chunk_logit_bytes(dtype, with_grad=True))
        assert rows >= _utils.MIN_CHUNK_ROWS_GPU >= 1024, dtype
        assert rows % _utils.CHUNK_ALIGN == 0


def test_gpu_chunks_of_a_small_vocabulary_fill_the_budget_at_the_real_dtype():
    vocab = 32000
    bf16 = chunk_rows(10**6, vocab, CUDA, logit_bytes=2)
    fp32 = chunk_rows(10**6, vocab, CUDA, logit_bytes=4)
    budget = _utils.DEFAULT_CHUNK_BYTES_GPU
    # The largest multiple of CHUNK_ALIGN that fits the budget at 2 bytes: twice the float32 count (give or
    # take the alignment), not the float32 count.
    assert bf16 * 2 * vocab <= budget < (bf16 + _utils.CHUNK_ALIGN) * 2 * vocab
    assert bf16 >= 2 * fp32 - _utils.CHUNK_ALIGN and bf16 > _utils.MIN_CHUNK_ROWS_GPU


def test_cpu_default_and_explicit_budgets_have_no_floor():
    assert chunk_rows(10**6, QWEN_VOCAB, CPU) * 4 * QWEN_VOCAB <= _utils.DEFAULT_CHUNK_BYTES_CPU
    assert chunk_rows(10**6, 131, CUDA, max_chunk_bytes=131 * 2 * 3, logit_bytes=2) == 3
    assert chunk_rows(5, QWEN_VOCAB, CUDA) == 5  # never more rows than there are
    assert chunk_rows(10**6, QWEN_VOCAB, CUDA, chunk_size=7) == 7
