"""CUDA's autocast rules on the CPU, so that code which breaks on a GPU breaks in CI too.

CPU autocast casts fewer ops than CUDA autocast does. On CUDA, upsampling, norms, softmax,
sums and losses run in fp32 whatever their input (the `AT_FORALL_FP32*` lists in torch's
`ATen/autocast_mode.h`), so a bf16 activation comes out of `F.interpolate` as fp32 there and
stays bf16 on the CPU: a `lerp(upsampled, x)` or `copy_` into fp32 state that works on the CPU
fails on the GPU. `cuda_autocast_on_cpu()` registers, for as long as it is open, CPU autocast
kernels that follow CUDA's lists: fp32 ops cast their floating inputs to fp32, lower-precision
ops to the autocast dtype, promote ops to the widest input type. Casts happen above autograd,
as CUDA's do, so gradients flow through them.

Used by the precision tests and `benchmarks/gpu_check.py --device cpu`; never by a real run.
"""
from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
from torch.utils._pytree import tree_map

# torch 2.14's ATen/autocast_mode.h: AT_FORALL_FP32 and AT_FORALL_FP32_SET_OPT_DTYPE (+ norm).
FP32_OPS = (
    "acos asin cosh erfinv exp expm1 log log10 log2 log1p reciprocal rsqrt sinh tan pow softplus layer_norm "
    "native_layer_norm rms_norm group_norm native_group_norm frobenius_norm nuclear_norm cosine_similarity "
    "poisson_nll_loss cosine_embedding_loss nll_loss nll_loss2d hinge_embedding_loss kl_div l1_loss smooth_l1_loss "
    "huber_loss mse_loss margin_ranking_loss multilabel_margin_loss soft_margin_loss triplet_margin_loss "
    "multi_margin_loss binary_cross_entropy_with_logits dist pdist cdist renorm logsumexp upsample_nearest1d "
    "_upsample_nearest_exact1d upsample_nearest2d _upsample_nearest_exact2d upsample_nearest3d "
    "_upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d _upsample_bilinear2d_aa upsample_trilinear3d "
    "upsample_bicubic2d _upsample_bicubic2d_aa prod softmax log_softmax cumprod cumsum linalg_vector_norm "
    "linalg_matrix_norm sum norm"
).split()
# AT_FORALL_LOWER_PRECISION_FP
LOWER_OPS = (
    "_convolution conv1d conv2d conv3d conv_tbc conv_transpose1d conv_transpose2d conv_transpose3d convolution prelu "
    "addmm addmv addr matmul einsum mm mv linalg_vecdot linear addbmm baddbmm bmm chain_matmul linalg_multi_dot "
    "scaled_dot_product_attention"
).split()
# AT_FORALL_PROMOTE
PROMOTE_OPS = "addcdiv addcmul atan2 bilinear cross dot vdot grid_sampler index_put tensordot scatter_add".split()

_AUTOCAST_CPU = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)
_LOW = (torch.float16, torch.bfloat16)


def _autocast_dtype() -> torch.dtype:
    getter = getattr(torch, "get_autocast_dtype", None)
    return getter("cpu") if getter else torch.get_autocast_cpu_dtype()


def _cast(value, dtype: torch.dtype, only_low: bool):
    def one(t):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.dtype == torch.float64:
            return t
        if only_low and t.dtype not in _LOW:
            return t
        return t.to(dtype)
    return tree_map(one, value)


def _kernel(overload, policy: str):
    def run(*args, **kwargs):
        with torch._C._ExcludeDispatchKeyGuard(_AUTOCAST_CPU):
            if policy == "fp32":
                args, kwargs = _cast((args, kwargs), torch.float32, only_low=True)
            elif policy == "lower":
                args, kwargs = _cast((args, kwargs), _autocast_dtype(), only_low=False)
            else:  # promote: every floating input to the widest one's dtype
                floats = [t.dtype for t in torch.utils._pytree.tree_leaves((args, kwargs))
                          if isinstance(t, torch.Tensor) and t.is_floating_point()]
                if floats:
                    widest = max(floats, key=lambda d: torch.finfo(d).bits)
                    args, kwargs = _cast((args, kwargs), widest, only_low=False)
            return overload(*args, **kwargs)
    return run


@contextlib.contextmanager
def cuda_autocast_on_cpu() -> Iterator[None]:
    """Within the block, `torch.autocast("cpu", ...)` casts as CUDA's autocast does."""
    lib = torch.library.Library("aten", "IMPL")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "overriding a previously registered kernel": that is the point
            for policy, names in (("fp32", FP32_OPS), ("lower", LOWER_OPS), ("promote", PROMOTE_OPS)):
                for name in names:
                    packet = getattr(torch.ops.aten, name, None)
                    if packet is None:
                        continue
                    for overload_name in packet.overloads():
                        if "out" in overload_name or overload_name.endswith("_"):
                            continue
                        overload = getattr(packet, overload_name)
                        qualified = name if overload_name == "default" else f"{name}.{overload_name}"
                        try:
                            lib.impl(qualified, _kernel(overload, policy), "AutocastCPU")
                        except RuntimeError:
                            pass  # an overload with no schema this build registers
        yield
    finally:
        lib._destroy()
