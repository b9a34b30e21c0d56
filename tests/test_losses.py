import math

import pytest
import torch

from lotus_hf.losses import (
    accuracy_gap,
    lotus_targets,
    round_accuracy,
    sample_gumbel,
    should_stop,
    soft_cross_entropy,
    temperature,
)


def test_gumbel_noise_is_seeded_and_matches_its_definition():
    z = torch.zeros(3, 4)
    a = sample_gumbel(z, torch.Generator().manual_seed(7))
    b = sample_gumbel(z, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    # -log(E), E ~ Exp(1), drawn by the same generator
    e = torch.empty(3, 4).exponential_(generator=torch.Generator().manual_seed(7))
    assert torch.allclose(a, -e.log())


def test_targets_follow_the_spec_with_fixed_noise():
    z = torch.tensor([[1.0, 2.0, 0.5], [0.2, 0.1, 3.0]])
    is_forget = torch.tensor([1, 0])
    tau = 1.5
    targets = lotus_targets(z, is_forget, tau, generator=torch.Generator().manual_seed(0))
    # Replay the two independent Gumbel draws by hand.
    generator = torch.Generator().manual_seed(0)
    g1 = -torch.empty(2, 3).exponential_(generator=generator).log()
    g2 = -torch.empty(2, 3).exponential_(generator=generator).log()
    soft = torch.softmax((z + g1) / tau, dim=-1)
    hard = torch.nn.functional.one_hot((z + g2).argmax(-1), 3).float()
    assert torch.allclose(targets[0], soft[0])
    assert torch.equal(targets[1], hard[1])
    assert not torch.equal(g1, g2)
    assert torch.allclose(targets.sum(-1), torch.ones(2))


def test_softmax_transform_is_noiseless_and_hand_computed():
    z = torch.tensor([[math.log(3.0), 0.0], [0.0, 1.0]])
    targets = lotus_targets(z, torch.tensor([1, 0]), tau=1.0, prob_transform="softmax")
    assert torch.allclose(targets[0], torch.tensor([0.75, 0.25]))
    assert torch.equal(targets[1], torch.tensor([0.0, 1.0]))
    # a higher temperature flattens the forget target: softmax(z / 2) of [ln 3, 0] = [sqrt3, 1] / (sqrt3 + 1)
    flat = lotus_targets(z, torch.tensor([1, 1]), tau=2.0, prob_transform="softmax")
    assert flat[0, 0].item() == pytest.approx(math.sqrt(3) / (math.sqrt(3) + 1), abs=1e-6)


def test_huge_temperature_gives_near_uniform_forget_targets():
    z = torch.tensor([[10.0, -5.0, 0.0, 3.0]])
    targets = lotus_targets(z, torch.tensor([1]), tau=math.exp(32 * 0.9), generator=torch.Generator().manual_seed(1))
    assert torch.allclose(targets, torch.full((1, 4), 0.25), atol=1e-6)


def test_unknown_transform_names_the_field():
    with pytest.raises(ValueError, match="`prob_transform`"):
        lotus_targets(torch.zeros(1, 2), torch.tensor([1]), 1.0, prob_transform="sparsemax")


def test_temperature_is_exp_alpha_delta():
    assert temperature(0.0, 8.0) == 1.0
    assert temperature(0.05, 8.0) == pytest.approx(math.exp(0.4))
    assert temperature(-0.01, 2.0) == pytest.approx(math.exp(-0.02))


def test_stop_rule_sees_rounded_accuracies():
    assert round_accuracy(0.9349) == 0.93
    # 0.914 and 0.9249 both round to 0.91 / 0.92: delta is exactly -0.01 -> stop
    assert accuracy_gap(0.914, 0.9249) == -0.01
    assert should_stop(accuracy_gap(0.914, 0.9249))
    # unrounded the gap would be -0.0109, but 0.9149 vs 0.9151 round to 0.91 / 0.92 -> stop too
    assert should_stop(accuracy_gap(0.9149, 0.9151))
    # 0.9151 vs 0.9249: 0.92 - 0.92 = 0 -> keep going although the raw gap is -0.0098
    assert accuracy_gap(0.9151, 0.9249) == 0.0
    assert not should_stop(accuracy_gap(0.9151, 0.9249))
    assert not should_stop(0.0)
    assert should_stop(-0.2)
    assert should_stop(-0.03, margin=0.03) and not should_stop(-0.02, margin=0.03)


def test_soft_cross_entropy_hand_values():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    targets = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    expected = torch.tensor([math.log(2.0), -0.5 * math.log(0.75) - 0.5 * math.log(0.25)])
    assert torch.allclose(soft_cross_entropy(logits, targets), expected)
