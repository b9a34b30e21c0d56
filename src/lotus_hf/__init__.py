"""lotus-hf: LoTUS machine unlearning for Hugging Face image classifiers.

The product: `UnlearningConfig` and `UnlearningTrainer` (LoTUS), the data (`ForgetRequest`,
`prepare_unlearning_data`), the evaluation (`evaluate_unlearning`, `Evaluation`, `rf_jsd`), the Hub (`load_model`,
`push_folder`), one whole run (`unlearn`, `save_unlearned`) and its verification (`verify`). The baselines
live in `lotus_hf.baselines`; the research harness (training originals, the benchmark) in `lotus_hf.research`,
outside this API.
"""

from . import _compat  # noqa: F401  (first: it quiets a DeepSpeed notice before transformers imports it)
from .config import UnlearningConfig
from .data import UnlearningData, load_image_dataset, prepare_unlearning_data
from .evaluation import Evaluation, UnlearningReport, evaluate_unlearning
from .images import PixelDataset
from .loading import load_model
from .push import push_folder
from .requests import ForgetRequest
from .rf_jsd import rf_jsd
from .run import save_unlearned, unlearn
from .trainer import UnlearningTrainer
from .verify import VerifyResult, verify
from .version import __version__

__all__ = [
    "Evaluation",
    "ForgetRequest",
    "PixelDataset",
    "UnlearningConfig",
    "UnlearningData",
    "UnlearningReport",
    "UnlearningTrainer",
    "VerifyResult",
    "__version__",
    "evaluate_unlearning",
    "load_image_dataset",
    "load_model",
    "prepare_unlearning_data",
    "push_folder",
    "rf_jsd",
    "save_unlearned",
    "unlearn",
    "verify",
]


def __getattr__(name: str):
    if name in ("BaselineConfig", "BaselineTrainer"):  # lotus-hf 0.1's single baseline class
        raise AttributeError(
            f"`lotus_hf.{name}` is gone: each baseline has its own config and trainer in lotus_hf.baselines "
            "(e.g. `ScrubConfig`, `ScrubTrainer`), and `lotus_hf.run.method_config('scrub', ...)` builds a config "
            "by name."
        )
    raise AttributeError(f"module 'lotus_hf' has no attribute {name!r}")
