"""The methods LoTUS is compared with (docs/evaluation.md), one file each: a config and a `Trainer` subclass,
or for SSD, which does not train, a function.

Each is the textbook version, fixed where the LoTUS paper's reference code was wrong: SCRUB returns the
trained student, every model is evaluated in eval mode, SSD leaves BatchNorm statistics alone. LoTUS itself
lives in lotus_hf.trainer, which never imports this package.

| name | what it does |
|---|---|
| `finetune` | cross-entropy on the retain set |
| `neggrad_plus` | per step `beta * CE(retain batch) - (1 - beta) * CE(forget batch)` |
| `random_labels` | cross-entropy on the forget set with fresh random wrong labels every step, plus the retain set |
| `bad_teacher` | KL to an incompetent (randomly initialised) teacher on forget rows, to the original on retain rows |
| `scrub` | alternate max passes (raise KL(original, student) on the forget set) and min steps (CE + KL on retain) |
| `ssd` | no training: dampen parameters far more important to the forget set than to all training data |
| `salun` | `random_labels`, updating only the weights most salient to the forget loss |
| `retrain` | train the same architecture from scratch on the retain set (the gold standard) |

Example:
    >>> from lotus_hf.baselines import BASELINES
    >>> config_class, trainer_class = BASELINES["scrub"]
    >>> config_class.__name__, trainer_class.__name__
    ('ScrubConfig', 'ScrubTrainer')
"""

from .bad_teacher import BadTeacherConfig, BadTeacherTrainer
from .base import BaselineConfig, BaselineTrainer, distillation_kl, fresh_model
from .finetune import FinetuneConfig, FinetuneTrainer
from .neggrad_plus import NegGradPlusConfig, NegGradPlusTrainer
from .random_labels import RandomLabelsConfig, RandomLabelsTrainer
from .retrain import RetrainConfig, RetrainTrainer
from .salun import SalUnConfig, SalUnTrainer
from .scrub import ScrubConfig, ScrubTrainer
from .ssd import SSDConfig, ssd

# name -> (config class, trainer class or function(model, forget, retain, config) -> facts)
BASELINES = {
    "finetune": (FinetuneConfig, FinetuneTrainer),
    "neggrad_plus": (NegGradPlusConfig, NegGradPlusTrainer),
    "random_labels": (RandomLabelsConfig, RandomLabelsTrainer),
    "bad_teacher": (BadTeacherConfig, BadTeacherTrainer),
    "scrub": (ScrubConfig, ScrubTrainer),
    "ssd": (SSDConfig, ssd),
    "salun": (SalUnConfig, SalUnTrainer),
    "retrain": (RetrainConfig, RetrainTrainer),
}

__all__ = [
    "BASELINES",
    "BadTeacherConfig",
    "BadTeacherTrainer",
    "BaselineConfig",
    "BaselineTrainer",
    "FinetuneConfig",
    "FinetuneTrainer",
    "NegGradPlusConfig",
    "NegGradPlusTrainer",
    "RandomLabelsConfig",
    "RandomLabelsTrainer",
    "RetrainConfig",
    "RetrainTrainer",
    "SSDConfig",
    "SalUnConfig",
    "SalUnTrainer",
    "ScrubConfig",
    "ScrubTrainer",
    "distillation_kl",
    "fresh_model",
    "ssd",
]
