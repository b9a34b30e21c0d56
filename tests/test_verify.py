"""Requests over time and `lotus-hf verify`: a model unlearned twice keeps both requests in its history, the
first forget set stays forgotten, and an auditor's `verify` finds each request (exit 0) or says it is not
there (exit 1), re-measuring the model next to what its report recorded."""

import json

import pytest
from conftest import save_tiny

from lotus_hf.cli import main


@pytest.fixture(scope="module")
def digits_parquet(digits, tmp_path_factory):
    """The digits the tiny trained ResNet learned, as a data set folder (`train` and `test` parquet files)."""
    folder = tmp_path_factory.mktemp("digits-parquet")
    for split in ("train", "test"):
        digits[split].to_parquet(str(folder / f"{split}.parquet"))
    return folder


def _verify(capsys, model, dataset, *request) -> tuple[int, str]:
    code = main(["verify", "--model", str(model), "--dataset", str(dataset), *request])
    return code, capsys.readouterr().out


def _table(printed: str) -> dict[str, list[float]]:
    rows = [
        line.split("|")[1:-1]
        for line in printed.splitlines()
        if line.startswith(("| recorded", "| measured"))
    ]
    return {cells[0].strip(): [float(c) if c.strip() != "-" else None for c in cells[1:]] for cells in rows}


def test_two_requests_over_time_and_an_auditor_verifying_each(
    trained_resnet, digits_parquet, tmp_path, capsys
):
    original = save_tiny(trained_resnet, tmp_path / "original")
    first, second = tmp_path / "first", tmp_path / "second"
    common = [
        "--dataset",
        str(digits_parquet),
        "--alpha",
        "32",
        "--learning-rate",
        "3e-3",
        "--batch-size",
        "32",
    ]
    assert main(["unlearn", "--model", str(original), *common, "--forget-first-percent", "10", "--epochs", "10",
                 "--output-dir", str(first)]) == 0  # fmt: skip
    later = ",".join(str(i) for i in range(1260, 1290))  # 30 samples outside the first 10% of each class
    # the target accuracy 0 (`--class-forgetting`) makes the second run train all its epochs: a real change
    assert main(["unlearn", "--model", str(first), *common, "--forget-indices", later, "--epochs", "3",
                 "--class-forgetting", "--class-mode", "paper", "--output-dir", str(second)]) == 0  # fmt: skip
    capsys.readouterr()
    second_report = json.loads((second / "report.json").read_text())
    assert (
        len(second_report["training"]["history"]) == 3
        and second_report["training"]["stopped_at_epoch"] is None
    )
    assert (second / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()

    # the history of the second model lists both requests, oldest first, in its config and its card
    steps = json.loads((second / "config.json").read_text())["lotus_hf_unlearning"]
    assert [s["forget"]["request"] for s in steps] == ["first_percent=10.0", "indices (30 given)"]
    assert [s["base_model"] for s in steps] == [str(original), str(first)]
    card = (second / "README.md").read_text()
    assert all(s["forget"]["sha256"] in card for s in steps)

    # the auditor: each request found at its step; the model of the first step measured as its report says
    code, printed = _verify(capsys, first, digits_parquet, "--forget-first-percent", "10")
    assert code == 0 and "found: step 1 of 1" in printed
    table = _table(printed)
    assert table["measured"] == pytest.approx(table["recorded"], abs=1e-4)  # the same model, the same numbers
    code, printed = _verify(capsys, second, digits_parquet, "--forget-indices", later)
    assert code == 0 and "found: step 2 of 2" in printed
    code, printed = _verify(capsys, second, digits_parquet, "--forget-first-percent", "10")
    assert code == 0 and "found: step 1 of 2" in printed and "no metrics recorded for step 1" in printed
    after_second = _table(printed)["measured"]

    # the first forget set stays forgotten: after the second request, its forget accuracy and MIA stay near
    # where the first run left them, far from the original's
    first_report = json.loads((first / "report.json").read_text())["rows"]
    forgotten, before = first_report["unlearned"], first_report["original"]
    assert before["acc_forget"] - forgotten["acc_forget"] > 0.05  # the first run did forget
    assert after_second[0] == pytest.approx(forgotten["acc_forget"], abs=0.03)
    assert after_second[3] == pytest.approx(forgotten["mia"], abs=0.1)  # here 0.41 after 0.48 (original 0.83)
    assert abs(after_second[0] - before["acc_forget"]) > 0.05

    # a request the model never had
    code, printed = _verify(capsys, second, digits_parquet, "--forget-classes", "digit-7")
    assert (
        code == 1 and "NOT FOUND in the unlearning history" in printed and "1: first_percent=10.0" in printed
    )
