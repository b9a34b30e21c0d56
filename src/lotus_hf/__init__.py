"""lotus-hf: LoTUS machine unlearning for Hugging Face image classifiers."""

__version__ = "0.1.0"

import logging

# transformers imports DeepSpeed whenever it is installed, and DeepSpeed 0.19 then warns on every machine
# without a GPU that it "was unable to detect" one, even for runs that never use it: drop that one line.
logging.getLogger("DeepSpeed").addFilter(
    lambda record: "Setting accelerator to CPU" not in record.getMessage()
)

from .baselines import BaselineConfig, BaselineTrainer
from .config import UnlearningConfig
from .data import ForgetRequest, PixelDataset, UnlearningData, load_image_dataset, prepare_unlearning_data
from .evaluation import UnlearningReport, evaluate_unlearning
from .rf_jsd import rf_jsd
from .trainer import UnlearningTrainer

__all__ = [
    "BaselineConfig",
    "BaselineTrainer",
    "ForgetRequest",
    "PixelDataset",
    "UnlearningConfig",
    "UnlearningData",
    "UnlearningReport",
    "UnlearningTrainer",
    "__version__",
    "evaluate_unlearning",
    "load_image_dataset",
    "prepare_unlearning_data",
    "rf_jsd",
]
