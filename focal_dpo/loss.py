"""The focal-DPO objective as small pure functions: chunked token log-probs, the DPO/IPO loss and the RPO NLL.

Log-probs are computed from the last hidden states and the LM head weight, a chunk of positions at a time and
only at the positions asked for, so the full `[batch, seq, vocab]` fp32 logits never exist. The backward pass
recomputes each chunk's logits instead of keeping them (the same trade as activation checkpointing).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK_SIZE = 256
LOGITS_BUDGET = 1 << 24  # elements per logits chunk (64 MiB in fp32) when the chunk size is automatic


def auto_chunk_size(vocab_size: int) -> int:
    """Positions per chunk so one chunk of fp32 logits stays near LOGITS_BUDGET elements."""
    return max(16, LOGITS_BUDGET // max(vocab_size, 1))


class _ChunkedTokenLogps(torch.autograd.Function):
    """log softmax(hidden @ weight.T)[target] for N positions, chunk by chunk; memory O(chunk * vocab)."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int):
        acc = torch.promote_types(hidden.dtype, torch.float32)  # fp32 softmax under bf16; fp64 stays fp64
        out = torch.empty(hidden.shape[0], dtype=acc, device=hidden.device)
        lse = torch.empty_like(
            out
        )  # kept for backward: softmax = exp(logits - lse) without a second reduction
        # autocast would re-cast inside each chunk; do the one cast here and keep the softmax in fp32
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            w = weight.to(hidden.dtype)
            for start in range(0, hidden.shape[0], chunk_size):
                stop = start + chunk_size
                logits = (hidden[start:stop] @ w.T).to(acc)
                picked = logits.gather(1, targets[start:stop, None]).squeeze(1)
                # logsumexp in place: torch.logsumexp would allocate a second chunk-sized buffer
                top = logits.amax(dim=-1)
                lse[start:stop] = top + logits.sub_(top[:, None]).exp_().sum(dim=-1).log_()
                out[start:stop] = picked - lse[start:stop]
                del logits  # free this chunk before the next one is allocated
        ctx.save_for_backward(hidden, weight, targets, lse)
        ctx.chunk_size = chunk_size
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        hidden, weight, targets, lse = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_hidden = torch.zeros_like(hidden) if need_hidden else None
        acc = torch.promote_types(hidden.dtype, torch.float32)
        low_precision = (
            hidden.dtype != acc
        )  # bf16/fp16 compute: the head's weight gradient still sums in fp32
        # one fp32 accumulator for the whole backward; every chunk adds into it in place
        grad_weight = torch.zeros(weight.shape, dtype=acc, device=weight.device) if need_weight else None
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            w = weight.to(hidden.dtype)
            for start in range(0, hidden.shape[0], ctx.chunk_size):
                stop = start + ctx.chunk_size
                h = hidden[start:stop]
                g = grad_out[start:stop].to(acc)
                # d logp[t] / d logits = onehot(t) - softmax(logits), built in place in one chunk buffer
                dlogits = (h @ w.T).to(acc).sub_(lse[start:stop, None]).exp_().mul_(-g[:, None])
                dlogits[torch.arange(h.shape[0], device=h.device), targets[start:stop]] += g
                dlogits_low = dlogits.to(hidden.dtype) if low_precision else dlogits
                if need_hidden:
                    grad_hidden[start:stop] = dlogits_low @ w
                if need_weight:
                    _accumulate_weight_grad(grad_weight, dlogits, dlogits_low, h)
                del dlogits, dlogits_low
        if need_weight and grad_weight.dtype != weight.dtype:
            grad_weight = grad_weight.to(weight.dtype)  # rounded once, after the whole sum
        return grad_hidden, grad_weight, None, None


def _accumulate_weight_grad(
    grad_weight: torch.Tensor, dlogits: torch.Tensor, dlogits_low: torch.Tensor, h: torch.Tensor
) -> None:
    """grad_weight (fp32, [V, H]) += dlogits.T @ h, in place: no [V, H] temporary, no rounding per chunk."""
    if h.dtype == grad_weight.dtype:
        grad_weight.addmm_(dlogits.T, h)
    elif h.is_cuda:
        # bf16 inputs on the tensor cores, fp32 accumulation straight into the accumulator
        torch.addmm(grad_weight, dlogits_low.T, h, out_dtype=grad_weight.dtype, out=grad_weight)
    else:
        # no mixed-dtype matmul off CUDA: the fp32 softmax gradient and an fp32 copy of this chunk's hidden
        # states ([chunk, H], small) give the same fp32 sum
        grad_weight.addmm_(dlogits.T, h.to(grad_weight.dtype))


def chunked_token_logps(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> torch.Tensor:
    """Log-prob of `targets[i]` under logits `hidden[i] @ weight.T`; hidden [N, H], weight [V, H] -> fp32 [N]."""
    if hidden.shape[0] == 0:
        return hidden.new_zeros(0, dtype=torch.float32) + 0 * hidden.sum()
    return _ChunkedTokenLogps.apply(hidden, weight, targets, chunk_size)


def logps(
    hidden: torch.Tensor,
    lm_head_weight: torch.Tensor,
    input_ids: torch.Tensor,
    positions: torch.Tensor,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Per-token log-probs of the next token, computed only where `positions` is True.

    hidden: [B, T, H] last hidden states; input_ids: [B, T]; positions: bool [B, T-1], where column j is the
    prediction of input_ids[:, j + 1] from hidden[:, j]. Returns fp32 [B, T-1], zero outside `positions`.
    """
    chunk_size = chunk_size or auto_chunk_size(lm_head_weight.shape[0])
    targets = input_ids[:, 1:][positions]
    selected = hidden[:, :-1][positions]
    if torch.is_autocast_enabled(hidden.device.type):
        # the final norm hands back fp32; the LM-head matmuls should run in the autocast dtype (bf16 on GPU)
        selected = selected.to(torch.get_autocast_dtype(hidden.device.type))
    picked = chunked_token_logps(selected, lm_head_weight, targets, chunk_size)
    out = torch.zeros(positions.shape, dtype=picked.dtype, device=hidden.device)
    return out.masked_scatter(positions, picked)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair loss and rewards from weighted sequence log-probs K (paper Eq. 4-8).

    sigmoid: -log sigmoid(beta * (dK+ - dK-)); ipo: (dK+ - dK- - 1 / (2 beta))^2, with dK = K_policy - K_ref.
    Returns (losses, chosen_rewards, rejected_rewards); rewards are beta * dK, detached.
    """
    chosen_logratios = policy_chosen - ref_chosen
    rejected_logratios = policy_rejected - ref_rejected
    margin = chosen_logratios - rejected_logratios
    if loss_type == "sigmoid":
        losses = -F.logsigmoid(beta * margin)
    elif loss_type == "ipo":
        losses = (margin - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown loss type {loss_type!r}: use 'sigmoid' or 'ipo'")
    return losses, beta * chosen_logratios.detach(), beta * rejected_logratios.detach()


def nll(token_logps: torch.Tensor, mask: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
    """Token-mean cross-entropy over `mask` (the RPO term); `num_tokens` overrides the count (a whole step's)."""
    count = num_tokens if num_tokens is not None else int(mask.sum())
    return -(token_logps * mask).sum() / max(count, 1)
