"""Run by tests/test_distributed.py under torchrun or `accelerate launch` (1 or 2 processes): LoTUS on digits,
result as JSON. Arguments: out.json per_device_batch original.pt [live-teacher]."""

import copy
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from conftest import digits_dataset, tiny_model, tiny_processor, unlearning_config  # noqa: E402

from lotus_hf import UnlearningTrainer  # noqa: E402
from lotus_hf._compat import leave_process_group  # noqa: E402
from lotus_hf.data import prepare_unlearning_data
from lotus_hf.requests import ForgetRequest


def local_share(model) -> float | None:
    """This process's share of `model`'s parameters: 1 when it holds them all, 1/world when sharded."""
    if model is None:
        return None
    from torch.distributed.tensor import DTensor

    if hasattr(model, "reshard"):  # FSDP2 keeps the root's parameters gathered after a forward pass
        model.reshard()
    params = list(model.parameters())
    if all(hasattr(p, "ds_tensor") for p in params):  # DeepSpeed ZeRO-3: this process's partition
        return sum(p.ds_tensor.numel() for p in params) / sum(p.ds_numel for p in params)
    local = sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in params)
    return local / sum(p.numel() for p in params)


def main(out_path: str, per_device_batch: int, weights: str, live_teacher: bool) -> None:
    data = prepare_unlearning_data(digits_dataset(), ForgetRequest.first_percent(10), tiny_processor(), seed=3407)
    # The original's weights come from the test (trained once there): the same starting point everywhere.
    original = tiny_model("resnet")
    original.load_state_dict(torch.load(weights, weights_only=True))
    config = unlearning_config(
        Path(tempfile.mkdtemp()),
        num_train_epochs=10,
        learning_rate=1e-2,
        alpha=64.0,
        per_device_train_batch_size=per_device_batch,
        cache_teacher_logits=not live_teacher,
    )
    trainer = UnlearningTrainer(
        copy.deepcopy(original),
        config,
        forget_dataset=data.forget,
        retain_dataset=data.retain,
        unseen_dataset=data.unseen,
    )
    trainer.train()
    seen = trainer.samples_seen()
    histories = [trainer.history]
    if trainer.accelerator.num_processes > 1:
        histories = [None] * trainer.accelerator.num_processes
        torch.distributed.all_gather_object(histories, trainer.history)
    if trainer.accelerator.is_main_process:
        result = {
            "stopped_at_epoch": trainer.stopped_at_epoch,
            "seen": seen,
            "sizes": {"forget": len(data.forget), "unseen": len(data.unseen)},
            "histories": histories,
            "world": trainer.accelerator.num_processes,
            "strategy": str(trainer.accelerator.distributed_type),
            "student": type(trainer.model_wrapped).__name__,
            "teacher": None if trainer.teacher is None else type(trainer.teacher).__name__,
            "student_share": local_share(trainer.model_wrapped),
            "teacher_share": local_share(trainer.teacher),
        }
        Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(
        sys.argv[1],
        int(sys.argv[2]),
        sys.argv[3],
        live_teacher=len(sys.argv) > 4 and sys.argv[4] == "live-teacher",
    )
    # As the CLI does: the trainer is gone with main(); every process waits for the JSON, then the group goes.
    leave_process_group(PartialState())
