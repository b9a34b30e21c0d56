# Copyright 2026 The lotus-hf authors. Licensed under the Apache License, Version 2.0.
"""RF-JSD: the retrain-free forgetting metric of LoTUS (Spartalis et al., CVPR 2025)."""

import datasets
import evaluate

from .rf_jsd_math import VARIANTS
from .rf_jsd_math import results

# One import per line above: evaluate's import scanner misreads several names on one line (0.4.6). The
# relative import makes `evaluate.load` copy rf_jsd_math.py (the math, shared with app.py) next to this
# module, so this folder needs nothing beyond numpy, datasets and evaluate: no lotus-hf.

_DESCRIPTION = """
RF-JSD says how far an unlearned classifier is from never having seen its forget set, without a model
retrained from scratch. For every class c that occurs in the forget labels it compares P_c, the mean
softmax output of the unlearned model over the forget samples of class c, with Q_c, the mean softmax
output of the original model over unseen samples (a held-out split) of class c, and averages the
Jensen-Shannon divergence of the pairs. Lower is better; 0 means the forget set looks exactly like unseen
data to the model.

Two variants: `jsd` (default; the textbook divergence, in [0, ln 2], comparable across data sets) and
`reference` (the form behind the paper's tables, which print it multiplied by 1e4; it shrinks with the
number of classes).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list` of `float`): softmax outputs of the UNLEARNED model on the forget
        samples, one probability row (summing to 1) per sample.
    references (`list` of `int`): ground-truth class ids of the forget samples.
    unseen_predictions (`list` of `list` of `float`): softmax outputs of the ORIGINAL model on unseen
        samples (for example the test split), one row per sample. Required.
    unseen_references (`list` of `int`): ground-truth class ids of the unseen samples. Required; every
        class in `references` needs at least one unseen sample.
    variant (`str`): `"jsd"` (default, textbook JSD) or `"reference"` (the paper's form). Defaults to the
        configuration name when it is a variant (`evaluate.load("rf_jsd", "reference")`), else `"jsd"`.
    per_class (`bool`): also return the textbook JSD of each forget class. Defaults to False.
    n_bootstrap (`int`): when > 0, also return a percentile bootstrap confidence interval from this many
        resamples (stratified by class, for the forget and the unseen rows). Defaults to 0 (none).
    confidence (`float`): level of the interval. Defaults to 0.95.
    seed (`int`): seed of the bootstrap; the same seed gives the same interval. Defaults to 0.

Returns:
    rf_jsd (`float`): the metric, in [0, ln 2] for `jsd`; lower is better.
    per_class (`dict` of `int` to `float`): with `per_class=True`, the JSD of each forget class (for `jsd`
        their mean is `rf_jsd`).
    rf_jsd_low, rf_jsd_high (`float`): with `n_bootstrap > 0`, the bounds of the interval.

Examples:

    Example 1-The unlearned model's outputs on the forget set against the original's on unseen data:
        >>> rf_jsd = evaluate.load("rf_jsd")
        >>> results = rf_jsd.compute(
        ...     predictions=[[0.7, 0.2, 0.1], [0.5, 0.4, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]],
        ...     references=[0, 0, 1, 2],
        ...     unseen_predictions=[[0.6, 0.3, 0.1], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4],
        ...                         [0.1, 0.1, 0.8]],
        ...     unseen_references=[0, 0, 1, 2, 2])
        >>> print(round(results["rf_jsd"], 6))
        0.007852

    Example 2-The paper's `reference` variant, with the JSD of each class:
        >>> results = rf_jsd.compute(predictions=[[0.1, 0.8, 0.1]], references=[1],
        ...                          unseen_predictions=[[0.2, 0.7, 0.1]], unseen_references=[1],
        ...                          variant="reference", per_class=True)
        >>> print(round(results["rf_jsd"], 6), {k: round(v, 6) for k, v in results["per_class"].items()})
        0.010504 {1: 0.010163}

    Example 3-Batches with `add_batch`, then a seeded bootstrap interval:
        >>> for probs, labels in [([[0.9, 0.1], [0.8, 0.2]], [0, 0]), ([[0.3, 0.7]], [1])]:
        ...     rf_jsd.add_batch(predictions=probs, references=labels)
        >>> results = rf_jsd.compute(unseen_predictions=[[0.6, 0.4], [0.7, 0.3], [0.4, 0.6], [0.2, 0.8]],
        ...                          unseen_references=[0, 0, 1, 1], n_bootstrap=200, seed=0)
        >>> results["rf_jsd_low"] <= results["rf_jsd"] <= results["rf_jsd_high"]
        True
"""

_CITATION = """
@inproceedings{spartalis2025lotus,
  title     = {{LoTUS}: Large-Scale Machine Unlearning with a Taste of Uncertainty},
  author    = {Spartalis, Christoforos N. and Semertzidis, Theodoros and Gavves, Efstratios and
               Daras, Petros},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2025},
  eprint    = {2503.18314},
  archivePrefix = {arXiv}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class RfJsd(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    # float64, not int64: a cast to int64 would turn a label 1.5 silently into 1; the
                    # math checks that every label is a whole class id
                    "references": datasets.Value("float64"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2503.18314"],
        )

    def _compute(
        self,
        predictions,
        references,
        unseen_predictions=None,
        unseen_references=None,
        variant=None,
        per_class=False,
        n_bootstrap=0,
        confidence=0.95,
        seed=0,
    ):
        if unseen_predictions is None or unseen_references is None:
            raise ValueError(
                "`unseen_predictions` and `unseen_references` are required: pass the original model's "
                "softmax outputs on unseen data (e.g. the test split) and their labels to `compute`."
            )
        if variant is None:
            variant = self.config_name if self.config_name in VARIANTS else "jsd"
        return results(
            predictions,
            references,
            unseen_predictions,
            unseen_references,
            variant=variant,
            per_class=per_class,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            seed=seed,
        )
