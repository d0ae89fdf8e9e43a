#!/usr/bin/env python
"""Write an LLM-generated description of every molecule in a CSV, as the ProtoMol paper did with a 7B instruct model.

Examples:
    python scripts/describe_molecules.py --input data/bace.csv --model models/Qwen2.5-7B-Instruct
    python scripts/describe_molecules.py --input my.csv --smiles_column mol --model /models/llm --limit 100

Any local causal language model whose tokenizer has a chat template works. Each prompt gives the model the
canonical SMILES (RDKit) and RDKit facts about it (formula, weight, logP, TPSA, donors/acceptors, rings,
functional groups); decoding is greedy, so the same model and input give the same descriptions. The output
CSV is the input plus one text column, rewritten after every batch: run the same command again after an
interruption and it goes on where it stopped. Rows whose SMILES RDKit cannot parse get an empty description
and are listed at the end.
"""

import argparse
import copy
import os
import sys
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

from protomol_hf import ProtoMolFeaturizationError, canonical_smiles, describe_molecule
from protomol_hf.cli.common import UsageError, positive_int, run_reporting_user_errors
from protomol_hf.loading import check_device

PROGRAM = "describe_molecules.py"
SYSTEM_MESSAGE = (
    "You are an expert medicinal chemist. Describe the given molecule in one paragraph: its structure, "
    "its functional groups and its likely physicochemical and biological properties. Do not comment on "
    "the SMILES string itself."
)
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Generation flags that only apply when sampling; an instruct model's generation_config.json usually sets
# some of them, and transformers rejects them next to do_sample=False.
SAMPLING_ONLY_FLAGS = ("temperature", "top_p", "top_k", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff")
# The summary names at most this many rows, so a large file with many bad rows still gives a readable line.
MAX_ROWS_NAMED = 20
ROW_NUMBERING = "row numbers are 0-based, header not counted"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows every default except None, which required options and computed defaults have."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The command line options, each with its default in --help."""
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=__doc__.split("\n\n")[0],
        epilog="Problems with the input are reported in one line with exit code 2; set PROTOMOL_TRACEBACK=1 "
        "to see the traceback as well.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--input", type=Path, required=True, help="CSV file with a SMILES column.")
    parser.add_argument("--smiles_column", default="smiles", help="Column of --input that holds the SMILES.")
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="CSV to write: the input rows and columns plus --text_column. If it exists from an earlier run "
        "on the same input, rows it already describes are kept and skipped. (default: the --input path with "
        "the suffix .described.csv)",
    )
    parser.add_argument("--text_column", default="description", help="Name of the new column of descriptions.")
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="Local folder of a causal language model whose tokenizer has a chat template (an instruct model).",
    )
    parser.add_argument("--batch_size", type=positive_int, default=8, help="Molecules per generate() call.")
    parser.add_argument("--max_new_tokens", type=positive_int, default=128, help="Longest description, in tokens.")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="Device to run the model on."
    )
    parser.add_argument(
        "--dtype",
        choices=["auto", *DTYPES],
        default="auto",
        help="Model weight dtype; auto is bfloat16 on CUDA and float32 elsewhere.",
    )
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="Only read and describe the first N rows (default: all)."
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="Random seed; greedy decoding draws no random numbers, this pins any the model's code draws.",
    )
    return parser


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype for --dtype; bfloat16 halves memory on GPUs, while CPUs are often slow at it."""
    if dtype != "auto":
        return DTYPES[dtype]
    return torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32


def read_input(path: Path, smiles_column: str, text_column: str, limit: int | None) -> pd.DataFrame:
    """The input rows as strings, so that the output repeats every value exactly as written."""
    if not path.is_file():
        raise UsageError(f"input file {path} does not exist")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False, nrows=limit)
    if smiles_column not in frame.columns:
        raise UsageError(f"{path} has no column {smiles_column!r} (columns: {', '.join(frame.columns)})")
    if text_column in frame.columns:
        raise UsageError(f"{path} already has a column {text_column!r}; choose another --text_column")
    return frame


def read_existing_descriptions(output: Path, frame: pd.DataFrame, smiles_column: str, text_column: str) -> list[str]:
    """The descriptions an earlier run left in `output` ("" where there is none yet).

    The earlier run may have covered fewer rows (--limit), but its rows must be the first rows of this input.
    """
    descriptions = [""] * len(frame)
    if not output.exists():
        return descriptions
    existing = pd.read_csv(output, dtype=str, keep_default_na=False)
    if text_column not in existing.columns or smiles_column not in existing.columns:
        raise UsageError(
            f"{output} exists but has no {smiles_column!r} and {text_column!r} columns, so it is not an earlier "
            "output of this script; remove it or choose another --output"
        )
    if len(existing) > len(frame):
        raise UsageError(
            f"{output} has {len(existing)} rows, more than the {len(frame)} rows of this run (see --limit); "
            "choose another --output so that they are not lost"
        )
    mismatched = [row for row, smiles in enumerate(existing[smiles_column]) if smiles != frame[smiles_column].iloc[row]]
    if mismatched:
        raise UsageError(
            f"{output} was written for another input: its SMILES differ from the input's in "
            f"{format_rows(mismatched)} ({ROW_NUMBERING}); remove it or choose another --output"
        )
    descriptions[: len(existing)] = existing[text_column].tolist()
    return descriptions


def load_model_and_tokenizer(model_dir: Path, device: str, dtype: torch.dtype):
    """The causal LM in eval mode on `device` and its tokenizer, set up for batched generation."""
    if not model_dir.is_dir():
        raise UsageError(f"model folder {model_dir} does not exist")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    except (OSError, ValueError) as error:
        raise UsageError(f"cannot load a tokenizer from {model_dir}: {error}") from None
    if not tokenizer.chat_template:
        raise UsageError(f"the tokenizer in {model_dir} has no chat template; use an instruct (chat) model")
    # Decoder-only models continue from the last position, so padding must go before the prompt.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        # Any token does: the attention mask hides padding from the model.
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True)
    return model.to(device).eval(), tokenizer


def build_messages(smiles: str, facts: str) -> list[dict[str, str]]:
    """The chat for one molecule: the system instructions and a user turn with the SMILES and RDKit facts."""
    user_message = f"Molecule (SMILES): {smiles}\nFacts computed with RDKit: {facts}\nDescribe this molecule."
    return [{"role": "system", "content": SYSTEM_MESSAGE}, {"role": "user", "content": user_message}]


def build_prompt(tokenizer, smiles: str, facts: str) -> str:
    """The prompt text for one molecule in the model's chat format, ending where the assistant's answer starts."""
    return tokenizer.apply_chat_template(build_messages(smiles, facts), tokenize=False, add_generation_prompt=True)


def molecule_facts(smiles: str) -> tuple[str, str]:
    """What the prompt shows of one input SMILES: its canonical form and its RDKit facts, so that the description
    does not depend on how the input wrote the molecule (a model may echo the SMILES it is shown). Raises
    ProtoMolFeaturizationError for an invalid SMILES."""
    return canonical_smiles(smiles), describe_molecule(smiles)


def molecule_prompt(tokenizer, smiles: str) -> str:
    """The prompt for one input SMILES (see `molecule_facts`)."""
    return build_prompt(tokenizer, *molecule_facts(smiles))


def greedy_generation_config(model, tokenizer, max_new_tokens: int):
    """The model's own generation settings (stop tokens, repetition penalty) with greedy decoding."""
    config = copy.deepcopy(model.generation_config)
    config.update(
        do_sample=False,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        **dict.fromkeys(SAMPLING_ONLY_FLAGS),
    )
    if config.eos_token_id is None:
        # Without a stop token every description would run to max_new_tokens.
        config.eos_token_id = tokenizer.eos_token_id
    return config


@torch.inference_mode()
def generate_descriptions(model, tokenizer, prompts: list[str], generation_config) -> list[str]:
    """One description per prompt: the generated tokens only, decoded without special tokens and stripped."""
    # The chat template already wrote any begin-of-text token into the prompt.
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    output_ids = model.generate(**inputs, generation_config=generation_config)
    new_token_ids = output_ids[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_token_ids, skip_special_tokens=True)]


def write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write `frame` to `path` through a temporary file, so an interrupted run never leaves half a CSV."""
    temporary = path.with_name(path.name + ".tmp")
    frame.to_csv(temporary, index=False)
    os.replace(temporary, path)


def format_rows(rows: list[int]) -> str:
    """Row numbers for a message, like "rows 1, 3", naming at most MAX_ROWS_NAMED of them."""
    named = ", ".join(str(row) for row in rows[:MAX_ROWS_NAMED])
    more = f" and {len(rows) - MAX_ROWS_NAMED} more" if len(rows) > MAX_ROWS_NAMED else ""
    return f"rows {named}{more}"


def summary(descriptions: list[str], invalid_rows: list[int], empty_rows: list[int]) -> str:
    """The closing line: how many rows have a description, and which ones could not get one."""
    described = sum(bool(text) for text in descriptions)
    line = f"described {described} of {len(descriptions)} rows; skipped {len(invalid_rows)} invalid rows"
    if invalid_rows:
        line += f" ({format_rows(invalid_rows)})"
    if empty_rows:
        line += f"; the model wrote nothing for {len(empty_rows)} valid rows ({format_rows(empty_rows)})"
    if invalid_rows or empty_rows:
        line += f"; {ROW_NUMBERING}"
    return line


def describe_rows(
    args: argparse.Namespace,
    frame: pd.DataFrame,
    descriptions: list[str],
    facts: dict[int, tuple[str, str]],
    output: Path,
):
    """Fill `descriptions` for the rows of `facts` (row -> `molecule_facts`) batch by batch, rewriting `output`
    after each; returns the rows for which the model wrote nothing."""
    set_seed(args.seed)
    model, tokenizer = load_model_and_tokenizer(args.model, args.device, resolve_dtype(args.dtype, args.device))
    generation_config = greedy_generation_config(model, tokenizer, args.max_new_tokens)
    empty_rows = []
    rows = list(facts)
    batches = [rows[start : start + args.batch_size] for start in range(0, len(rows), args.batch_size)]
    for batch in tqdm(batches, desc="Describing", unit="batch"):
        prompts = [build_prompt(tokenizer, *facts[row]) for row in batch]
        texts = generate_descriptions(model, tokenizer, prompts, generation_config)
        for row, text in zip(batch, texts, strict=True):
            descriptions[row] = text
            if not text:
                empty_rows.append(row)
        write_atomically(frame.assign(**{args.text_column: descriptions}), output)
    return empty_rows


def describe_file(args: argparse.Namespace) -> None:
    """Describe every row of args.input that the output does not describe yet, and print a summary."""
    output = args.output or args.input.with_suffix(".described.csv")
    check_device(args.device)  # before the model loads, which can take minutes
    output.parent.mkdir(parents=True, exist_ok=True)
    frame = read_input(args.input, args.smiles_column, args.text_column, args.limit)
    descriptions = read_existing_descriptions(output, frame, args.smiles_column, args.text_column)
    pending_rows = [row for row, text in enumerate(descriptions) if not text]
    if len(pending_rows) < len(frame):
        print(f"{len(frame) - len(pending_rows)} of {len(frame)} rows already described in {output}; resuming")
    # Computed before the model loads, so that a rerun whose only undescribed rows are unparsable does not load it.
    facts, invalid_rows = {}, []
    for row in pending_rows:
        try:
            facts[row] = molecule_facts(frame[args.smiles_column].iloc[row])
        except ProtoMolFeaturizationError:
            invalid_rows.append(row)
    if facts:
        empty_rows = describe_rows(args, frame, descriptions, facts, output)
    else:  # nothing the model could describe: no need to load it
        empty_rows = []
        write_atomically(frame.assign(**{args.text_column: descriptions}), output)
    print(f"wrote {output}")
    print(summary(descriptions, invalid_rows, empty_rows))


def main(argv=None) -> int:
    """Run the script (`argv` defaults to sys.argv[1:]); returns the exit code."""
    args = build_parser().parse_args(argv)
    return run_reporting_user_errors(PROGRAM, describe_file, args)


if __name__ == "__main__":
    sys.exit(main())
