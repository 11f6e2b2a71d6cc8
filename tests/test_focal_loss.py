"""focal_dpo.loss: each pure function against a naive formula, in fp32."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from focal_dpo.loss import chunked_token_logps, dpo_loss, logps, nll


def naive_logps(hidden, weight, input_ids, positions):
    full = torch.log_softmax(hidden[:, :-1] @ weight.T, dim=-1)
    picked = full.gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return picked * positions


def test_chunked_logps_match_naive_values_and_gradients():
    torch.manual_seed(0)
    b, t, h, v = 3, 9, 16, 50
    hidden = torch.randn(b, t, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    input_ids = torch.randint(0, v, (b, t))
    input_ids[0, 3] = 0  # token id 0 is a real token (the fixture's EOS), never a sentinel
    positions = torch.rand(b, t - 1) > 0.4
    coef = torch.randn(b, t - 1)

    ours = logps(hidden, weight, input_ids, positions, chunk_size=4)  # chunks that do not divide N
    ref = naive_logps(hidden, weight, input_ids, positions)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    assert (ours[~positions] == 0).all()

    grads_ours = torch.autograd.grad((ours * coef).sum(), [hidden, weight])
    grads_ref = torch.autograd.grad((ref * coef).sum(), [hidden, weight])
    for g_ours, g_ref in zip(grads_ours, grads_ref, strict=True):
        torch.testing.assert_close(g_ours, g_ref, atol=1e-5, rtol=1e-5)


def test_chunked_logps_pass_gradcheck_in_float64():
    torch.manual_seed(1)
    hidden = torch.randn(7, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(11, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 11, (7,))
    assert torch.autograd.gradcheck(lambda h, w: chunked_token_logps(h, w, targets, 3), (hidden, weight))


def test_sigmoid_dpo_loss_matches_its_formula():
    pc, pr, rc, rr = (torch.tensor([x]) for x in (-3.0, -5.0, -4.0, -4.5))
    losses, chosen_r, rejected_r = dpo_loss(pc, pr, rc, rr, beta=0.1)
    margin = (-3.0 + 4.0) - (-5.0 + 4.5)  # 1.5
    assert math.isclose(losses.item(), -math.log(1 / (1 + math.exp(-0.1 * margin))), rel_tol=1e-6)
    assert math.isclose(chosen_r.item(), 0.1 * 1.0, rel_tol=1e-6)
    assert math.isclose(rejected_r.item(), 0.1 * -0.5, rel_tol=1e-6)


def test_ipo_loss_matches_its_formula():
    pc, pr, rc, rr = (torch.tensor([x]) for x in (-3.0, -5.0, -4.0, -4.5))
    losses, _, _ = dpo_loss(pc, pr, rc, rr, beta=0.25, loss_type="ipo")
    assert math.isclose(losses.item(), (1.5 - 1 / (2 * 0.25)) ** 2, rel_tol=1e-6)


def test_nll_is_the_token_mean_cross_entropy_including_token_id_zero():
    torch.manual_seed(2)
    logits = torch.randn(2, 6, 30)
    targets = torch.randint(0, 30, (2, 6))
    targets[1, 2] = 0  # the published trainer's ignore_index=0 would drop this token
    mask = torch.tensor([[0, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    token_logps = torch.log_softmax(logits, -1).gather(-1, targets[..., None]).squeeze(-1)
    expected = F.cross_entropy(logits[mask], targets[mask])
    torch.testing.assert_close(nll(token_logps, mask), expected)


def test_bf16_head_weight_gradient_matches_fp32_within_bf16_precision():
    # two chunks whose gradients nearly cancel: rounding each chunk's [vocab, hidden] product to bf16 before
    # summing would leave an error of 2**-9 of one chunk's gradient, ~20x the small total's bf16 precision
    torch.manual_seed(3)
    k, h, v = 64, 32, 300
    hidden = torch.randn(k, h).repeat(2, 1)
    targets = torch.randint(0, v, (k,)).repeat(2)
    coef = torch.cat([torch.ones(k), -(1 - 1 / 64) * torch.ones(k)])
    weight = torch.randn(v, h) * 0.2

    def weight_grad(dtype):
        w = weight.to(torch.bfloat16).to(dtype).requires_grad_()
        out = chunked_token_logps(hidden.to(torch.bfloat16).to(dtype), w, targets, k)
        (out * coef.to(dtype)).sum().backward()
        return w.grad.double()

    exact, ours = weight_grad(torch.float64), weight_grad(torch.bfloat16)
    assert ours.dtype == torch.float64 and (ours - exact).norm() / exact.norm() < 2**-6


def test_head_weight_gradient_allocates_no_vocab_by_hidden_buffer_per_chunk():
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(4)
    n, h, v = 300, 64, 4000
    weight = torch.randn(v, h, dtype=torch.bfloat16, requires_grad=True)
    hidden = torch.randn(n, h, dtype=torch.bfloat16, requires_grad=True)
    out = chunked_token_logps(hidden, weight, torch.randint(0, v, (n,)), 16)  # 19 chunks of 16 positions
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out.sum().backward()
    big = [e.self_cpu_memory_usage for e in prof.events() if e.self_cpu_memory_usage >= v * h * 2]
    # the fp32 accumulator and the one bf16 cast of the finished sum; a chunk's buffers are 16 x 4000
    assert sorted(big) == [v * h * 2, v * h * 4]
