"""Every Triton kernel compiled for an H100/H200 (sm_90) exactly as a launch would specialise it, without a
GPU, and checked in the compiled code: 0 register spills, 64-bit row offsets, vectorised global loads and
stores in the vocabulary loops, no barrier inside them, and identical PTX for num_stages 1/2/3.

"As a launch would specialise it": the arguments go through Triton's own launch binder (the code a kernel
call runs to turn its arguments into a signature), fed with tensors of the launch's dtypes and the real
sizes, so sizes below 2^31 are i32, multiples of 16 (V = 151,936 and 128,256; the strides) carry
``tt.divisibility = 16`` and so allow 16-byte loads, G is the group size launched, 1s and Nones become
constants, and the constexprs are each config of the autotune list (``_utils.GPU_CONFIGS``: the one the
autotuner picks is among them). Layouts: the trainer's [B, T+1, V] logits sliced to [:, :-1] (8 x 1,024
tokens), the fused-linear path's packed [1,024, V] chunks (chunk_rows at H = 3,584 in bf16), fp16 logits
with their float32 gradient buffer, the persistent-grid variant, the selective log-prob kernel (the first of
the two sweeps) and the two-sweep gradient kernel (``two_sweep._logit_grad_kernel``, with and without the
entropy term, at its fixed launch block).

The compile runs in a fresh process without TRITON_INTERPRET (the interpreter would otherwise be in force);
Triton's wheel carries ptxas and cuobjdump, which give the cubin's register / stack / local-memory use. The
facts are recorded in benchmarks/RESULTS-kernels.md ("sm_90 compile facts").
"""
import json
import os
import subprocess
import sys

import pytest

QWEN_VOCAB, LLAMA3_VOCAB = 151936, 128256

_SCRIPT = r'''
import json, os, re, subprocess, sys, tempfile
os.environ.pop("TRITON_INTERPRET", None)
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource, make_backend
try:
    from triton.runtime.jit import JITFunction, create_function_from_signature
    assert hasattr(JITFunction, "_pack_args")
except (ImportError, AssertionError):
    print("this Triton's launch binder differs from 3.9's", triton.__version__)
    sys.exit(3)
from seedgrpo.kernels import _utils, one_pass, persistent, selective_logprob, two_sweep

TARGET = GPUTarget("cuda", 90, 32)
BACKEND = make_backend(TARGET)
CUOBJDUMP = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")
# H (Qwen2.5-7B's 3,584) shapes only the matmuls around a fused-linear chunk, not a Triton kernel: the chunk's
# row count comes from chunk_rows at the real dtype, as the fused-linear path computes it.
B, T, G, H = 8, 1024, 8, 3584
VOCABS = tuple(int(v) for v in sys.argv[1:])


def compile_as_launched(kernel, args, num_warps, num_stages=1):
    """Triton's launch path up to the compile: bind and specialise the arguments, then compile for sm_90."""
    binder = create_function_from_signature(kernel.signature, kernel.params, BACKEND)
    bound, specialization, options = binder(**args, num_warps=num_warps, num_stages=num_stages)
    options, signature, constexprs, attrs = kernel._pack_args(BACKEND, options, bound, specialization, options)
    compiled = triton.compile(ASTSource(kernel, signature, constexprs, attrs), target=TARGET,
                              options=options.__dict__)
    return signature, attrs, compiled


def resource_usage(cubin):
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([CUOBJDUMP, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
    return {k: int(v) for k, v in re.findall(r"\b(REG|STACK|LOCAL):(\d+)", out)}


def loops(ptx_lines):
    """The PTX lines of each innermost loop (from a label to the last branch back to it, containing no other
    loop): the vocabulary sweeps. The persistent kernel's row loop encloses them and is not one."""
    labels = {}
    spans = {}
    for i, line in enumerate(ptx_lines):
        m = re.match(r"^(\$L__BB\d+_\d+):", line)
        if m:
            labels[m.group(1)] = i
        m = re.search(r"\bbra(?:\.uni)?\s+(\$L__BB\d+_\d+);", line)
        if m and labels.get(m.group(1), len(ptx_lines)) < i:
            spans[m.group(1)] = (labels[m.group(1)], i)
    inner = [(a, b) for a, b in spans.values()
             if not any(a <= c and d <= b and (c, d) != (a, b) for c, d in spans.values())]
    return [ptx_lines[a:b + 1] for a, b in inner]


def stride_math(ptx_lines, kernel_name, signature, names):
    """For each stride argument: the opcodes that read the register it is loaded into (in 64 bits: the
    register is %rd, or every reader widens it)."""
    params = [n for n, ty in signature.items() if ty != "constexpr"]
    out = {}
    for name in names:
        if name not in params:
            out[name] = "constant"
            continue
        param = re.escape(f"{kernel_name}_param_{params.index(name)}")
        pat = re.compile(r"ld\.param\.\w+\s+(%\w+),\s*\[" + param + r"\]")
        regs = [m.group(1) for line in ptx_lines for m in [pat.search(line)] if m]
        readers = []
        for reg in regs:
            use = re.compile(r",\s*" + re.escape(reg) + r"\b")
            readers += [line.split()[0] for line in ptx_lines if use.search(line) and not pat.search(line)]
        out[name] = {"registers": regs, "readers": sorted(set(readers))}
    return out


def facts(name, kernel, args, num_warps, block_v, num_stages=1, strides=()):
    args = dict(args, BLOCK_V=block_v)
    signature, attrs, compiled = compile_as_launched(kernel, args, num_warps, num_stages)
    ptx = compiled.asm["ptx"]
    lines = ptx.split("\n")
    index = {n: i for i, n in enumerate(signature)}
    body = []
    for lp in loops(lines):
        text = "\n".join(lp)
        body.append({"loads": re.findall(r"ld\.global(?:\.\w+)*", text),
                     "stores": re.findall(r"st\.global(?:\.\w+)*", text), "barriers": text.count("bar.sync")})
    return {"name": name, "kernel": kernel.__name__, "V": args["V"], "BLOCK_V": block_v, "num_warps": num_warps,
            "num_stages": num_stages,
            "size_types": {n: signature[n] for n in ("V", "T", "logits_rows", "G", "token_offset") if n in signature},
            "V_divisible_by_16": ["tt.divisibility", 16] in attrs.get((index["V"],), []),
            "usage": resource_usage(compiled.asm["cubin"]), "ptx_local": len(re.findall(r"\.local\b", ptx)),
            "loops": body, "strides": stride_math(lines, kernel.__name__, signature, strides), "ptx": ptx}


def t(dtype=torch.float32):
    return torch.empty(16, dtype=dtype)  # only the dtype and the (16-byte aligned) address matter


def loss_args(V, dtype, *, layout, grad_dtype=None):
    """_grpo_loss_kernel's arguments as one_pass.one_pass_args builds them for ``layout``."""
    logits = t(dtype)
    if layout == "logits":  # [B, T+1, V][:, :-1], in place, advantages alone, off-policy with a KL term
        sb, st, rows = (T + 1) * V, V, T
        grad, gb, gt = (logits, sb, st) if grad_dtype is None else (t(grad_dtype), T * V, V)
        per_row = dict(GROUP_FACTOR=None, TOKEN_INDEX=None, OLD_LOGP=t(), REF_LOGP=t(), token_offset=0,
                       HAS_KL_LOSS=True, HAS_DELTA=True, beta=0.04)
    else:  # a fused-linear chunk [rows, V] of packed tokens, in place, the group factor applied in the kernel
        rows = _utils.chunk_rows(B * T, V, torch.device("cuda"),
                                 logit_bytes=_utils.chunk_logit_bytes(dtype, with_grad=True))
        sb, st = 0, V
        grad, gb, gt = logits, sb, st
        per_row = dict(GROUP_FACTOR=t(), TOKEN_INDEX=t(torch.int64), OLD_LOGP=None, REF_LOGP=None,
                       token_offset=rows, HAS_KL_LOSS=False, HAS_DELTA=False, beta=0.0)
    return dict(LOGITS=logits, stride_logits_b=sb, stride_logits_t=st, GRAD=grad, stride_grad_b=gb,
                stride_grad_t=gt, IDS=t(torch.int64), WEIGHTS=t(), ADVANTAGES=t(), LOSS=t(), KL=t(), ENTROPY=t(),
                CLIP_LOW=t(), CLIP_HIGH=t(), logits_rows=rows, T=T, V=V, G=G, inv_temperature=1.0 / 0.7,
                epsilon_low=0.2, epsilon_high=0.28, delta=1.5, WRITE_GRAD=True, ROUND_BF16=False, **per_row)


def logit_grad_args(V, dtype, *, layout, entropy=True, grad_dtype=None):
    """two_sweep._logit_grad_kernel's arguments (the second of the two sweeps) as launch_logit_grad builds
    them: the [B, T+1, V][:, :-1] logits in place (or into a float32 buffer for fp16), or a fused-linear chunk
    [rows, V] of packed tokens at a token offset; ``entropy``: the loss has an entropy term (C_ENT given)."""
    logits = t(dtype)
    if layout == "logits":
        sb, st, rows, offset = (T + 1) * V, V, T, 0
        grad, gb, gt = (logits, sb, st) if grad_dtype is None else (t(grad_dtype), T * V, V)
    else:
        rows = _utils.chunk_rows(B * T, V, torch.device("cuda"),
                                 logit_bytes=_utils.chunk_logit_bytes(dtype, with_grad=True))
        sb, st, offset = 0, V, rows
        grad, gb, gt = (logits, sb, st) if grad_dtype is None else (t(grad_dtype), sb, st)
    return dict(LOGITS=logits, stride_logits_b=sb, stride_logits_t=st, GRAD=grad, stride_grad_b=gb,
                stride_grad_t=gt, IDS=t(torch.int64), LOGP=t(), ENTROPY=t(), C_LOGP=t(),
                C_ENT=t() if entropy else None, token_offset=offset, logits_rows=rows, V=V,
                inv_temperature=1.0 / 0.7, HAS_ENTROPY_GRAD=entropy, ROUND_BF16=False)


STRIDES = ("stride_logits_b", "stride_logits_t", "stride_grad_b", "stride_grad_t")
configs = [(c.kwargs["BLOCK_V"], c.num_warps) for c in _utils.GPU_CONFIGS]
jobs = []
for V in VOCABS:
    for bv, nw in configs:
        jobs.append(("loss/logits/bf16", one_pass._grpo_loss_kernel, loss_args(V, torch.bfloat16, layout="logits"),
                     nw, bv, 1, STRIDES))
    jobs.append(("loss/fused_chunk/bf16", one_pass._grpo_loss_kernel,
                 loss_args(V, torch.bfloat16, layout="chunk"), 8, 4096, 1, STRIDES))
    jobs.append(("loss_persistent/logits/bf16", persistent._grpo_loss_kernel_persistent,
                 dict(loss_args(V, torch.bfloat16, layout="logits"), n_rows=B * T, rows_in_flight=264),
                 persistent.DEFAULT_NUM_WARPS, persistent.DEFAULT_BLOCK_V, 1, STRIDES))
    # The two-sweep gradient kernel runs at one fixed block (no autotuning: it may write over the logits).
    lg_block = (min(two_sweep._GPU_BLOCK_V, triton.next_power_of_2(V)), two_sweep._GPU_NUM_WARPS)
    jobs.append(("logit_grad/logits/bf16", two_sweep._logit_grad_kernel,
                 logit_grad_args(V, torch.bfloat16, layout="logits"), lg_block[1], lg_block[0], 1, STRIDES))
    jobs.append(("logit_grad/fused_chunk/bf16/no_entropy", two_sweep._logit_grad_kernel,
                 logit_grad_args(V, torch.bfloat16, layout="chunk", entropy=False), lg_block[1], lg_block[0], 1,
                 STRIDES))
    for bv, nw in configs[1:4]:
        jobs.append(("selective/logits/bf16", selective_logprob._selective_logprob_kernel,
                     dict(LOGITS=t(torch.bfloat16), stride_b=(T + 1) * V, stride_t=V, IDS=t(torch.int64), LOGP=t(),
                          ENTROPY=t(), token_offset=0, logits_rows=T, V=V, inv_temperature=1.0), nw, bv, 1,
                     ("stride_b", "stride_t")))
V = VOCABS[0]
jobs.append(("loss/logits/fp16+fp32grad", one_pass._grpo_loss_kernel,
             loss_args(V, torch.float16, layout="logits", grad_dtype=torch.float32), 8, 4096, 1, STRIDES))
jobs.append(("logit_grad/fused_chunk/fp16+fp32grad", two_sweep._logit_grad_kernel,
             logit_grad_args(V, torch.float16, layout="chunk", grad_dtype=torch.float32), two_sweep._GPU_NUM_WARPS,
             two_sweep._GPU_BLOCK_V, 1, STRIDES))
# The variants the trainer also launches: the loss forward alone (no_grad evaluation; fp32 logits of the torch
# policy tests) and the log-probs without entropies (selective_logprob(..., with_entropy=False)).
jobs.append(("forward/loss/fused_chunk/fp32", one_pass._grpo_loss_kernel,
             dict(loss_args(V, torch.float32, layout="chunk"), WRITE_GRAD=False), 8, 4096, 1,
             ("stride_logits_b", "stride_logits_t")))  # no gradient: its strides are dead code
jobs.append(("selective/logits/bf16/no_entropy", selective_logprob._selective_logprob_kernel,
             dict(LOGITS=t(torch.bfloat16), stride_b=(T + 1) * V, stride_t=V, IDS=t(torch.int64), LOGP=t(),
                  ENTROPY=None, token_offset=0, logits_rows=T, V=V, inv_temperature=1.0), 8, 4096, 1,
             ("stride_b", "stride_t")))
for ns in (2, 3):
    jobs.append(("loss/logits/bf16", one_pass._grpo_loss_kernel, loss_args(V, torch.bfloat16, layout="logits"),
                 8, 4096, ns, STRIDES))
# A control: a vocabulary that is not a multiple of 16 cannot be proven 16-byte aligned per row.
jobs.append(("control/loss/logits/bf16/V+1", one_pass._grpo_loss_kernel,
             loss_args(V + 1, torch.bfloat16, layout="logits"), 8, 4096, 1, STRIDES))
# Every launchable kernel of the package (the @triton.jit functions named *_kernel*; the others are helpers
# they call), so that a kernel added without a compile job here fails the coverage test.
from seedgrpo.kernels import fused_linear_grpo
launchable = sorted({obj.__name__ for mod in (_utils, one_pass, persistent, two_sweep,
                                               selective_logprob, fused_linear_grpo)
                     for obj in vars(mod).values()
                     if isinstance(obj, JITFunction) and "_kernel" in obj.__name__})
print(json.dumps({"launchable": launchable}), flush=True)
for job in jobs:
    print(json.dumps(facts(*job)), flush=True)
'''


@pytest.fixture(scope="module")
def compiled():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"  # what GPU runs use today; silences Triton 3.9's warning
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(QWEN_VOCAB), str(LLAMA3_VOCAB)], capture_output=True,
                          text=True, env=env, timeout=600)
    if proc.returncode == 3:  # e.g. the GPU image's Triton 3.6, where the compiled kernels are tested on the GPU
        pytest.skip(f"compiles through Triton 3.9's launch binder: {proc.stdout.strip()}")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(out) >= 20
    return out


@pytest.fixture(scope="module")
def kernel_facts(compiled):
    return [f for f in compiled if "launchable" not in f]


def test_every_kernel_of_the_package_is_compiled(compiled, kernel_facts):
    (listing,) = [f for f in compiled if "launchable" in f]
    assert {"_grpo_loss_kernel", "_logit_grad_kernel", "_selective_logprob_kernel"} <= set(listing["launchable"])
    assert set(listing["launchable"]) == {f["kernel"] for f in kernel_facts}


def _kernels(facts, control=False):
    return [f for f in facts if f["name"].startswith("control/") == control]


def _where(f):
    return f"{f['name']} V={f['V']} BLOCK_V={f['BLOCK_V']} warps={f['num_warps']} stages={f['num_stages']}"


def test_sizes_are_i32_and_the_vocabulary_is_known_divisible_by_16(kernel_facts):
    for f in _kernels(kernel_facts):
        assert set(f["size_types"].values()) <= {"i32", "constexpr"}, (_where(f), f["size_types"])
        assert f["size_types"]["V"] == "i32" and f["V_divisible_by_16"], _where(f)
    assert {f["V"] for f in _kernels(kernel_facts)} == {QWEN_VOCAB, LLAMA3_VOCAB}


def test_no_register_spills(kernel_facts):
    for f in kernel_facts:
        usage = f["usage"]
        assert usage.get("REG", 0) > 0, (_where(f), usage)  # cuobjdump answered
        assert usage["STACK"] == 0 and usage["LOCAL"] == 0 and f["ptx_local"] == 0, (_where(f), usage)


def test_row_offsets_are_64_bit(kernel_facts):
    """Each stride is either loaded into a 64-bit register or read only by widening instructions: a 32-bit
    row x stride product would wrap past 2^31 elements (B*T*V is 1.2e9 at 8 x 1,024 x 151,936)."""
    widening = ("mul.wide.s32", "mul.wide.u32", "mad.wide.s32", "mad.wide.u32", "cvt.s64.s32", "cvt.u64.u32")
    for f in kernel_facts:
        for name, info in f["strides"].items():
            if info == "constant":
                continue
            assert info["registers"], (_where(f), name, "never loaded")
            for reg in info["registers"]:
                readers = info["readers"]
                assert reg.startswith("%rd") or readers and all(op in widening for op in readers), \
                    (_where(f), name, reg, readers)


def test_vocabulary_loops_load_and_store_16_bytes_and_have_no_barrier(kernel_facts):
    for f in _kernels(kernel_facts):
        loops = [lp for lp in f["loops"] if lp["loads"] or lp["stores"]]
        assert any(lp["loads"] for lp in loops), _where(f)
        for lp in loops:
            assert all(op.startswith(("ld.global.v4", "ld.global.v2")) for op in lp["loads"]), (_where(f), lp)
            assert all(op.startswith(("st.global.v4", "st.global.v2")) for op in lp["stores"]), (_where(f), lp)
            # softmax_row_stats keeps per-lane statistics: the cross-lane reductions come after the loop. The one
            # known exception: fp16 logits with their float32 gradient, whose sweep loads 8 halves but stores
            # 4 floats per 16-byte vector, so Triton converts the layout through shared memory (barriers).
            if f["name"].endswith("fp16+fp32grad") and lp["stores"]:
                continue
            assert lp["barriers"] == 0, (_where(f), lp)
        if f["name"].startswith(("loss", "logit_grad")):  # the gradient sweep writes the row back
            assert any(lp["loads"] and lp["stores"] for lp in loops), _where(f)


def test_the_check_sees_scalar_loads_when_the_vocabulary_is_not_a_multiple_of_16(kernel_facts):
    (control,) = _kernels(kernel_facts, control=True)
    assert not control["V_divisible_by_16"]
    assert any(op in ("ld.global.b16", "ld.global.u16") for lp in control["loops"] for op in lp["loads"]), control


def test_num_stages_does_not_change_the_code(kernel_facts):
    """Why _utils.GPU_CONFIGS lists one num_stages: these loops have no tl.dot, so the pipeliner leaves them
    alone and stages 1, 2 and 3 give the same PTX."""
    same = [f for f in kernel_facts if f["name"] == "loss/logits/bf16" and f["V"] == QWEN_VOCAB
            and (f["BLOCK_V"], f["num_warps"]) == (4096, 8)]
    assert sorted(f["num_stages"] for f in same) == [1, 2, 3]
    assert len({f["ptx"] for f in same}) == 1
