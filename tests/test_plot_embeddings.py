"""scripts/plot_embeddings.py on a tiny untrained model and a 40-molecule CSV."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES, load_script, tiny_config

from protomol_hf import ProtoMolForMolecularPropertyPrediction, ProtoMolProcessor
from protomol_hf.data import load_table, random_split, save_split

plot_embeddings = load_script("plot_embeddings")


def test_plot_writes_png_and_coordinates_of_molecules_and_prototypes(tmp_path, tokenizer):
    csv = FIXTURES / "tiny_classification.csv"
    table = load_table(csv)
    model_dir = tmp_path / "model"
    torch.manual_seed(0)
    ProtoMolForMolecularPropertyPrediction(tiny_config(task_names=["label"])).save_pretrained(model_dir)
    ProtoMolProcessor(tokenizer, max_text_length=32).save_pretrained(model_dir)
    split = random_split(table, seed=0)
    save_split(split, table, model_dir / "split.json")

    output = tmp_path / "figures" / "tsne.png"
    coordinates = plot_embeddings.main(["--model", str(model_dir), "--output", str(output), "--data_file", str(csv)])
    assert output.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    written = pd.read_csv(output.with_suffix(".csv"), keep_default_na=False)
    num_test, num_prototypes = len(split["test"]), 2 * 3
    assert written["kind"].tolist() == ["graph"] * num_test + ["text"] * num_test + ["prototype"] * num_prototypes
    expected_classes = table.labels[split["test"], 0]
    np.testing.assert_array_equal(written["class"][:num_test].astype(float), expected_classes)
    assert written["class"][-num_prototypes:].astype(float).tolist() == [0, 0, 0, 1, 1, 1]
    assert np.isfinite(coordinates[["x", "y"]].to_numpy()).all()
    arguments = ["--model", str(model_dir), "--data_file", str(csv)]
    with pytest.raises(SystemExit, match="'nope' is not a task of this model: label"):
        plot_embeddings.main([*arguments, "--output", str(output), "--task", "nope"])
    with pytest.raises(SystemExit) as exit_info:  # argparse refuses an output that is not a .png
        plot_embeddings.main([*arguments, "--output", str(tmp_path / "tsne.jpg")])
    assert exit_info.value.code == 2
