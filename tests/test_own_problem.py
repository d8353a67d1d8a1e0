"""Acceptance: a user's own problem through the CLI (its main(), in this process)
on local Ray. scikit-learn's handwritten digits (not CIFAR-10), written as an
ImageFolder of PNGs and as Hugging Face-style Parquet with other column names,
tuned by a sweep file that lives outside the repository with a model registered
in that file."""

import json

import pandas as pd
import pytest

from pipelines.data.cache import CACHE_DIR_ENV
from pipelines.run import main
from tests.conftest import REPO
from tests.digits import write_digits_folder, write_digits_parquet
from tests.user_sweeps import write_data_sweep

pytestmark = pytest.mark.integration



@pytest.mark.parametrize("layout", ["imagefolder", "parquet"])
def test_own_data_and_model_from_a_sweep_file_outside_the_repo(tmp_path, layout, capsys,
                                                               monkeypatch, local_ray):
    if layout == "imagefolder":
        root = write_digits_folder(tmp_path / "data" / "digits")
        data = f"ImageFolder({str(root)!r})"
    else:
        root = write_digits_parquet(tmp_path / "data" / "digits_parquet")
        data = f"ParquetImages({str(root)!r}, image='image', label='digit')"
    sweep_file = write_data_sweep(tmp_path / "my_project", data)
    assert not sweep_file.is_relative_to(REPO)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    code = main([str(sweep_file), "--quick", "--storage", str(tmp_path / "results"),
                 "--name", "run"])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    run_dir = tmp_path / "results" / "digits_sweep" / "run"
    trials = pd.read_parquet(run_dir / "trials.parquet")
    best = trials["best_val_acc"].max()
    assert len(trials) == 4 and best > 0.9, trials
    assert f"{best:.4f}"[:4] in out.out.split("trials by val_acc:")[1]  # printed
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["data"]["num_classes"] == 10 and meta["data"]["channels"] == 1
    # no sizes in the budget: every image, a stratified 10% held out for validation
    assert meta["data"]["image_size"] == [8, 8] and 170 <= meta["data"]["val_size"] <= 190
    assert meta["data"]["train_size"] + meta["data"]["val_size"] == 1797
    if layout == "parquet":  # the class names from the Hugging Face schema metadata
        assert meta["data"]["class_names"][:2] == ["zero", "one"]
    assert meta["sweep_origin"] == str(sweep_file)
    print(f"{layout}: best val_acc {best:.4f}")  # the README's figure (pytest -s)


def _bad_data(tmp_path, case):
    """A data source of the user's that is wrong in one way, as a sweep's `data`."""
    if case == "one class":
        root = write_digits_folder(tmp_path / "data" / "digits", n=60)
        for folder in list(root.iterdir())[1:]:
            for png in folder.iterdir():
                png.unlink()
            folder.rmdir()
        return f"ImageFolder({str(root)!r})", "has images of one class only"
    if case == "unreadable image":
        root = write_digits_folder(tmp_path / "data" / "digits", n=60)
        broken = next((root / "3").iterdir())
        broken.write_bytes(b"not a png")
        return f"ImageFolder({str(root)!r})", broken.name
    if case == "missing column":
        root = write_digits_parquet(tmp_path / "data" / "parquet", n=60)
        return f"ParquetImages({str(root)!r}, label='fine_label')", "digit"
    root = write_digits_folder(tmp_path / "data" / "digits", n=60)
    return f"ImageFolder({str(root)!r})", "no_such_module"


@pytest.mark.parametrize("case", ["one class", "unreadable image", "missing column",
                                  "model path"])
def test_bad_user_data_or_model_is_one_line_exit_2_and_nothing_written(tmp_path, case, capsys,
                                                                       monkeypatch):
    data, named = _bad_data(tmp_path, case)
    sweep_file = write_data_sweep(tmp_path / "my_project", data)
    if case == "model path":
        text = sweep_file.read_text().replace('"model": "tiny_digits_net"',
                                              '"model": "no_such_module.nets:build"')
        sweep_file.write_text(text)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    code = main([str(sweep_file), "--quick", "--storage", str(tmp_path / "results")])
    err = capsys.readouterr().err
    error = err.splitlines()[-1]  # after the decode's progress line, if it got that far
    assert code == 2 and error.startswith("error: ") and named in error, err
    assert "Traceback" not in err and not (tmp_path / "results").exists()
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))  # no half cache
