"""Run by tests/test_distributed.py under torchrun (1 or 2 processes): NegGrad+ and SCRUB, recording which
forget samples each process trains on, as JSON. Arguments: out.json per_device_batch original.pt."""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import torch  # noqa: E402
from accelerate import PartialState  # noqa: E402
from conftest import digits_dataset, tiny_model, tiny_processor  # noqa: E402

from lotus_hf._compat import leave_process_group  # noqa: E402
from lotus_hf.baselines import NegGradPlusConfig, NegGradPlusTrainer, ScrubConfig, ScrubTrainer  # noqa: E402
from lotus_hf.data import prepare_unlearning_data
from lotus_hf.images import PixelDataset
from lotus_hf.requests import ForgetRequest


class RecordingNegGradPlus(NegGradPlusTrainer):
    """NegGrad+, noting the id of every forget sample it takes (its first pixel, set to the id below)."""

    def forget_batches(self):
        for batch in super().forget_batches():
            self.seen.extend(int(v) for v in batch["pixel_values"][:, 0, 0, 0].round().tolist())
            yield batch


class RecordingScrub(ScrubTrainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if inputs["is_forget"].bool().all():  # a max step
            self.seen.extend(int(v) for v in inputs["pixel_values"][:, 0, 0, 0].round().tolist())
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def main(out_path: str, batch: int, weights: str) -> None:
    # 128 forget samples: 4 steps of 2 x 16, one pass without the padding accelerate adds to an uneven last batch
    data = prepare_unlearning_data(digits_dataset(), ForgetRequest.indices(range(128)), tiny_processor(), seed=3407)
    pixels = data.forget.pixel_values.clone()
    pixels[:, 0, 0, 0] = torch.arange(len(pixels), dtype=pixels.dtype) + 1000  # each forget sample's id
    forget = PixelDataset(pixels, data.forget.labels)
    common = dict(
        output_dir=tempfile.mkdtemp(),
        per_device_train_batch_size=batch,
        disable_tqdm=True,
        use_cpu=True,
        logging_strategy="no",
        channels_last=False,
    )
    seen = {}
    for name, trainer_class, config in (
        # as many steps as one pass over the forget set takes, all processes together
        (
            "neggrad_plus",
            RecordingNegGradPlus,
            NegGradPlusConfig(**common, max_steps=-(-len(forget) // (2 * 16))),
        ),
        ("scrub", RecordingScrub, ScrubConfig(**common, num_train_epochs=1, scrub_max_epochs=1, max_steps=1)),
    ):
        model = tiny_model("resnet")
        model.load_state_dict(torch.load(weights, weights_only=True))
        trainer = trainer_class(model, config, forget_dataset=forget, retain_dataset=data.retain)
        trainer.seen = []
        trainer.train()
        everyone = [None] * trainer.accelerator.num_processes
        if trainer.accelerator.num_processes > 1:
            torch.distributed.all_gather_object(everyone, trainer.seen)
        else:
            everyone = [trainer.seen]
        seen[name] = everyone
    if trainer.accelerator.is_main_process:
        Path(out_path).write_text(json.dumps({"seen": seen, "forget": len(forget)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
    leave_process_group(PartialState())  # as the CLI does, once the trainers are gone with main()
