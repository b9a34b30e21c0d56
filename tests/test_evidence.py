"""The statistics behind a verdict, on hand-computed values and on outputs whose answer is known by construction."""

import numpy as np
import pytest
import torch

from lotus_hf.evidence import (
    benjamini_hochberg,
    class_matched_weights,
    log_softmax,
    logit_confidence,
    resampling_weights,
    verify_outputs,
    weighted_auc,
)
from lotus_hf.provenance import check_history, history_step, weights_sha256


def test_logit_confidence_is_log_odds_of_the_class():
    log_probs = np.log(np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5]]))
    assert logit_confidence(log_probs, np.array([0, 1])) == pytest.approx([np.log(9), np.log(0.3 / 0.7)])
    assert logit_confidence(log_probs) == pytest.approx([np.log(9), 0.0])  # the predicted class
    # exact where a softmax in float32 saturates at 1: from the logits, not from 1 - p
    assert logit_confidence(log_softmax(np.array([[60.0, 0.0]])))[0] == pytest.approx(60.0)


def test_weighted_auc_counts_pairs_and_half_ties():
    # positives 0.35, 0.8; negatives 0.1, 0.4: pairs (0.35>0.1), (0.35<0.4), (0.8>0.1), (0.8>0.4) -> 3/4
    assert weighted_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]), np.ones(4)) == 0.75
    # a tie counts one half; a weight of 2 counts a row twice
    assert weighted_auc(np.array([0.5, 0.5]), np.array([0, 1]), np.ones(2)) == 0.5
    assert weighted_auc(np.array([0.1, 0.4, 0.35]), np.array([0, 0, 1]), np.array([2.0, 1.0, 1.0])) == pytest.approx(
        2 / 3
    )
    rows = weighted_auc(np.array([0.1, 0.9]), np.array([0, 1]), np.array([[1.0, 1.0], [1.0, 0.0]]))
    assert rows[0] == 1.0 and np.isnan(rows[1])  # no positive weight: undefined


def test_benjamini_hochberg_by_hand():
    # m = 4, level 0.1: thresholds 0.025, 0.05, 0.075, 0.1; sorted p 0.001, 0.02, 0.2, 0.9 -> the first two pass
    assert benjamini_hochberg(np.array([0.9, 0.001, 0.2, 0.02]), 0.1).tolist() == [False, True, False, True]
    # step-up: 0.04 fails its own rank (0.025) but passes because rank 2 (0.045 <= 0.05) does
    assert benjamini_hochberg(np.array([0.04, 0.045, 0.5, 0.6]), 0.1).tolist() == [True, True, False, False]
    assert not benjamini_hochberg(np.array([0.5, 0.6])).any()


def test_class_matched_weights_and_resampling_stay_within_classes():
    weights = class_matched_weights(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 2]))
    assert weights.tolist() == [3.0, 0.5, 0.5, 0.0]
    with pytest.raises(ValueError, match=r"class\(es\) \[3\]"):
        class_matched_weights(np.array([3]), np.array([0, 1]))
    counts = resampling_weights(np.array([0, 0, 0, 1, 1]), 50, np.random.default_rng(0))
    assert (counts[:, :3].sum(1) == 3).all() and (counts[:, 3:].sum(1) == 2).all()


def _outputs(rng, n, boost, classes=10):
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes))
    logits[np.arange(n), labels] += 2.5 + boost + rng.normal(size=n)
    return log_softmax(logits), labels


def _shift(seed, labels, classes=10):
    """Logits of a model that never saw `labels`' samples: unseen-like, its own noise (`seed`)."""
    rng = np.random.default_rng(100 + seed)
    logits = rng.normal(size=(len(labels), classes))
    logits[np.arange(len(labels)), labels] += 2.5 + rng.normal(size=len(labels))
    return logits


def test_memorised_samples_are_not_forgotten_and_unseen_ones_are_forgotten():
    rng = np.random.default_rng(0)
    held, held_labels = _outputs(rng, 4000, 0.0)
    memorised = verify_outputs(*_outputs(rng, 800, 3.0), held, held_labels, kind="samples")
    assert memorised.verdict == "not_forgotten" and memorised.exit_code == 1
    assert all(e.outcome == "not_forgotten" for e in memorised.evidence)
    unseen = verify_outputs(*_outputs(rng, 4000, 0.0), held, held_labels, kind="samples")
    assert unseen.verdict == "forgotten" and unseen.exit_code == 0
    for e in unseen.evidence:  # the interval holds the statistic and the decision reads its upper end
        assert e.interval[0] <= e.statistic <= e.interval[1] and e.equivalence_interval[1] <= e.threshold


def test_too_few_forget_samples_are_inconclusive_and_say_what_would_settle_it():
    rng = np.random.default_rng(1)
    held, held_labels = _outputs(rng, 300, 0.0)
    result = verify_outputs(*_outputs(rng, 40, 0.4), held, held_labels, kind="samples")
    assert result.verdict == "inconclusive" and result.exit_code == 3
    assert "Not enough data" in result.advice
    undecided = [e for e in result.evidence if e.outcome == "inconclusive"]
    assert undecided and all(e.heldout_needed is None or e.heldout_needed > 0 for e in undecided)


def test_inconclusive_advice_never_asks_the_data_set_for_images_it_does_not_have():
    """The verdict reads every held-out image it may: more can only come from the auditor (`--heldout`) or from
    reference models, and the advice says so instead of asking for more of this data set."""
    rng = np.random.default_rng(4)
    held, held_labels = _outputs(rng, 400, 0.0)
    result = verify_outputs(*_outputs(rng, 3000, 0.12), held, held_labels, kind="samples")
    needed = [e.heldout_needed for e in result.evidence if e.outcome == "inconclusive"]
    assert result.verdict == "inconclusive" and needed and all(n is not None for n in needed)
    assert f"about {max(needed):,} more held-out images" in result.advice
    assert "it read all it may of this data set" in result.advice
    assert "`--heldout`" in result.advice and "`--reference-models`" in result.advice


def test_a_forget_set_known_less_than_unseen_data_is_noted_not_counted():
    rng = np.random.default_rng(2)
    held, held_labels = _outputs(rng, 3000, 0.0)
    forget, labels = _outputs(rng, 3000, 0.0)
    wrong = (labels + 1) % 10  # mislabelled samples: a model that never saw them disagrees with their labels
    result = verify_outputs(forget, wrong, held, held_labels, kind="samples")
    assert result.verdict == "forgotten" and any(e.below for e in result.evidence)
    assert "knows the forget set less than unseen data" in result.advice


def test_with_references_over_forgetting_is_reported_with_its_interval():
    """Two-sided where references allow it: mislabelled samples are known less than unseen data by the references
    too (noted, not counted), but a forget set the model gets wrong where the references get it right (steered to
    other classes) is over-forgotten: the gap between them gives the samples away."""
    rng = np.random.default_rng(3)
    held, held_labels = _outputs(rng, 3000, 0.0)
    forget, labels = _outputs(rng, 1500, 0.0)
    # the references, trained without the samples, treat them as unseen samples of their classes
    references = [log_softmax(_shift(r, labels)) for r in range(2)]
    ref_held = [_outputs(rng, 3000, 0.0)[0] for _ in range(2)]
    honest = verify_outputs(
        forget, labels, held, held_labels, kind="samples", reference_forget=references, reference_heldout=ref_held
    )
    over = next(e for e in honest.evidence if e.test == "over_forgetting")
    assert over.outcome == "forgotten"  # no sign of over-forgetting
    steered = forget.copy()
    steered[np.arange(1500), labels] = forget.min(1) - 1.0  # the true class made the least likely
    result = verify_outputs(
        steered, labels, held, held_labels, kind="samples", reference_forget=references, reference_heldout=ref_held
    )
    over = next(e for e in result.evidence if e.test == "over_forgetting")
    assert over.details["acc_forget"] == 0.0 and over.details["acc_forget_references"] > 0.5
    assert over.outcome == "not_forgotten" and over.interval[0] > over.threshold
    assert over.interval[0] <= over.statistic == over.details["acc_forget_references"] <= over.interval[1]
    assert result.verdict == "not_forgotten" and "over-forgotten" in result.advice
    # without references, a hand-picked set is only noted below unseen data: it may be atypical
    alone = verify_outputs(steered, labels, held, held_labels, kind="indices")
    assert all(e.test != "over_forgetting" for e in alone.evidence) and any(e.below for e in alone.evidence)


def test_a_typical_forget_set_known_less_than_held_out_images_is_over_forgotten_without_references():
    """A request that drew a typical sample of its classes (the first 10% of each) should be known as well as
    held-out images of those classes: clearly less is over-forgetting, with or without references."""
    rng = np.random.default_rng(4)
    held, held_labels = _outputs(rng, 3000, 0.0)
    forget, labels = _outputs(rng, 1500, 0.0)
    honest = verify_outputs(forget, labels, held, held_labels, kind="first_percent")
    over = next(e for e in honest.evidence if e.test == "over_forgetting")
    assert over.outcome == "forgotten" and "acc_heldout" in over.details
    steered = forget.copy()
    steered[np.arange(1500), labels] = forget.min(1) - 1.0  # the true class made the least likely
    result = verify_outputs(steered, labels, held, held_labels, kind="first_percent")
    over = next(e for e in result.evidence if e.test == "over_forgetting")
    assert over.details["acc_forget"] == 0.0 and over.details["acc_heldout"] > 0.5
    assert over.outcome == "not_forgotten" and over.interval[0] > over.threshold
    assert result.verdict == "not_forgotten" and "over-forgotten" in result.advice
    assert "held-out images of the same classes" in result.advice
    # the one-sided tests alone would have called it forgotten
    assert all(e.outcome == "forgotten" for e in result.evidence if e.test != "over_forgetting")


def test_held_out_images_trained_on_are_told_from_the_test_splits_other_half():
    """An owner who trained on the held-out half the verdict reads makes it a member like the forget set, and every
    test comparing the two passes. Its twin, the test split's other half, was not trained on: the `heldout_unseen_*`
    tests tell them apart and the verdict cannot say `forgotten`. Held-out images trained on by no one pass it."""
    rng = np.random.default_rng(5)
    forget, labels = _outputs(rng, 600, 1.5)  # members
    trained_on, trained_labels = _outputs(rng, 2000, 1.5)  # the held-out half, trained on as well
    twin, twin_labels = _outputs(rng, 2000, 0.0)  # the other half: unseen
    cheat = verify_outputs(forget, labels, trained_on, trained_labels, kind="first_percent")
    assert cheat.verdict == "forgotten"  # what the public comparison alone says

    def with_twin(held, held_labels):
        return verify_outputs(
            forget,
            labels,
            held,
            held_labels,
            kind="first_percent",
            calibration_log_probs=twin,
            calibration_labels=twin_labels,
        )

    caught = with_twin(trained_on, trained_labels)
    unseen = {e.test: e for e in caught.evidence if e.test.startswith("heldout_unseen")}
    for test, threshold in (("heldout_unseen_gap", 0.0), ("heldout_unseen_auc", 0.5)):
        found = unseen[test]
        assert found.outcome == "inconclusive" and found.interval[0] > found.threshold
        assert found.threshold == pytest.approx(threshold) and (found.n_forget, found.n_heldout) == (2000, 2000)
    assert (
        caught.verdict == "inconclusive"
        and "`--heldout`" in caught.advice
        and "as a model trained on them would" in caught.advice
    )
    # the other tests read as before: the new one is decided apart
    assert [e.outcome for e in caught.evidence[:-2]] == [e.outcome for e in cheat.evidence]
    honest_held, honest_labels = _outputs(rng, 2000, 0.0)
    honest = with_twin(honest_held, honest_labels)
    unseen = {e.test: e for e in honest.evidence if e.test.startswith("heldout_unseen")}
    assert all(e.outcome == "forgotten" for e in unseen.values())
    assert abs(unseen["heldout_unseen_auc"].statistic - 0.5) < 0.05
    assert honest.verdict == "not_forgotten"  # the forget set, members, against truly unseen images


def test_class_tests_read_how_often_the_class_is_still_predicted():
    rng = np.random.default_rng(3)
    held, held_labels = _outputs(rng, 2000, 0.0)
    forget, _ = _outputs(rng, 300, 0.0)
    labels = np.full(300, 4)
    kept = forget.copy()
    kept[:, 4] = -50.0  # a model that never predicts class 4
    result = verify_outputs(kept, labels, held - np.eye(10)[4] * 50, held_labels, kind="classes")
    rates = {e.test: e for e in result.evidence}
    assert rates["class_predicted_train"].statistic == 0 and rates["class_predicted_train"].outcome == "forgotten"
    still = forget.copy()
    still[:, 4] = 50.0  # one that always does
    assert verify_outputs(still, labels, held, held_labels, kind="classes").verdict == "not_forgotten"


def test_weights_hash_ignores_memory_format_and_history_checks_read_it():
    conv = torch.nn.Conv2d(3, 4, 3)
    before = weights_sha256(conv)
    assert weights_sha256(conv.to(memory_format=torch.channels_last)) == before
    assert weights_sha256({"weight": conv.weight.double(), "bias": conv.bias}) != before  # dtype counts
    step = history_step(
        {"sha256": "f" * 64, "request": "classes=Bag"},
        method="lotus",
        settings={"alpha": 2},
        base_model="me/m",
        before="a" * 64,
        after=before,
        seed=7,
    )
    ok = check_history([step], before, "f" * 64)
    assert ok["step"] == 1 and ok["weights_match"] is True and ok["chain_intact"] is True
    assert check_history([step], "0" * 64, "f" * 64)["weights_match"] is False
    assert check_history([step], before, "e" * 64)["step"] is None
    old = {k: v for k, v in step.items() if not k.startswith("weights_")}  # lotus-hf 0.1 recorded no hashes
    assert check_history([old], before, "f" * 64)["weights_match"] is None
    assert check_history([], before)["weights_match"] is None
    base = check_history([step], before, "f" * 64, base_weights=lambda name: "b" * 64)
    assert base["base_match"] is False and any("did not start from" in n for n in base["notes"])
