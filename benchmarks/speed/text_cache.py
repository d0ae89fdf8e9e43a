"""Measure text-feature caching: molecules/s of `TextFeatureCache.build` and of the bare text model.

Caching the frozen language model's token states is the dominant cost of preparing a training run. On the
template descriptions of the first --num_molecules molecules of a bundled set, this script times, in one run:
  * `TextFeatureCache.build` (tokenize, run the text model, write the memory-mapped cache), from empty;
  * the bare text model on the same texts and batches (the floor).

The text model is the default all-MiniLM-L6-v2 (--text_model minilm), a local model folder, or, with
--text_size, a Qwen2.5 decoder of that size built from its config with random weights (speed does not
depend on the weights) and the Qwen tokenizer in --tokenizer. --save_text_model writes that model and
tokenizer as a folder that `scripts/train.py --text_model` takes (e.g. for a ZeRO-3 launch).

    python -m benchmarks.speed.text_cache --dataset_name bace --output benchmarks/results/text_cache.json
    python -m benchmarks.speed.text_cache --text_size qwen2.5-0.5b --tokenizer QWEN_TOKENIZER_DIR \\
        --device cuda --dtype bfloat16
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, Qwen2Config

from benchmarks.machine import describe_machine
from benchmarks.speed.measure import elapsed_since, report_results
from protomol_hf import ProtoMolConfig, ProtoMolForMolecularPropertyPrediction
from protomol_hf.cli.common import add_device_options, positive_int
from protomol_hf.data import load_table
from protomol_hf.loading import resolve_text_model
from protomol_hf.processing_protomol import molecule_texts
from protomol_hf.text_cache import TextFeatureCache

# Shapes of the Qwen2.5 base models (their published config.json files).
QWEN25_SIZES = {
    "qwen2.5-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                         intermediate_size=4864, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                         intermediate_size=8960, tie_word_embeddings=True),
    "qwen2.5-7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                       intermediate_size=18944, tie_word_embeddings=False),
}  # fmt: skip


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset_name", default="bace", help="Bundled set whose template descriptions are cached.")
    parser.add_argument(
        "--num_molecules", type=positive_int, default=None, help="Molecules from the start (default: all)."
    )
    parser.add_argument("--text_model", default="minilm", help="'minilm' or a local text model folder.")
    parser.add_argument(
        "--text_size", choices=sorted(QWEN25_SIZES), default=None, help="Instead: a random Qwen2.5 of this size."
    )
    parser.add_argument("--tokenizer", default=None, help="Tokenizer folder for --text_size (the Qwen tokenizer).")
    parser.add_argument("--batch_size", type=int, default=64, help="Texts per text-model call (the cache's default).")
    parser.add_argument("--max_text_length", type=int, default=256, help="Tokens kept per description.")
    add_device_options(parser)
    parser.add_argument("--save_text_model", type=Path, default=None, help="Folder to save the text model in.")
    parser.add_argument("--output", type=Path, default=None, help="JSON file for the results.")
    args = parser.parse_args(argv)
    if args.text_size is not None and args.tokenizer is None:
        parser.error("--text_size needs --tokenizer (a folder with the Qwen tokenizer)")
    return args


def build_model(args: argparse.Namespace) -> tuple[ProtoMolForMolecularPropertyPrediction, AutoTokenizer]:
    """The ProtoMol classifier around the chosen text model, on the device in the dtype, and its tokenizer."""
    dtype = getattr(torch, args.dtype)
    if args.text_size is None:
        text_model_dir = resolve_text_model(args.text_model)
        tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
        model = ProtoMolForMolecularPropertyPrediction.from_text_pretrained(text_model_dir, num_tasks=1)
        return model.to(device=args.device, dtype=dtype).eval(), tokenizer
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    text_config = Qwen2Config(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **QWEN25_SIZES[args.text_size]
    )
    # Built on the device in the target dtype: a 7B model would take minutes to initialize on the CPU.
    with torch.device(args.device):
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            model = ProtoMolForMolecularPropertyPrediction(
                ProtoMolConfig(text_config=text_config.to_dict(), num_tasks=1)
            )
        finally:
            torch.set_default_dtype(default_dtype)
    return model.eval(), tokenizer


@torch.no_grad()
def time_bare_text_model(model, tokenizer, texts: list[str], args: argparse.Namespace) -> float:
    """Seconds of the text model alone over the cache's batches (the same texts, sorted by length)."""
    tokens = tokenizer(texts, truncation=True, max_length=args.max_text_length)["input_ids"]
    order = sorted(range(len(tokens)), key=lambda row: len(tokens[row]))
    batches = [
        tokenizer.pad(
            {"input_ids": [tokens[row] for row in order[start : start + args.batch_size]]}, return_tensors="pt"
        )
        for start in range(0, len(order), args.batch_size)
    ]
    batches = [{name: tensor.to(args.device) for name, tensor in batch.items()} for batch in batches]
    text_model = model.protomol.text_model
    text_model(**batches[0])  # warm-up
    start = time.perf_counter()
    for batch in batches:
        text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return elapsed_since(start, args.device)


def main(argv=None) -> dict:
    args = parse_args(argv)
    table = load_table(dataset_name=args.dataset_name)
    smiles = table.smiles[: args.num_molecules]
    texts = molecule_texts(smiles, None, "template")
    distinct = len(set(texts))
    model, tokenizer = build_model(args)
    if args.save_text_model is not None:
        model.protomol.text_model.save_pretrained(args.save_text_model)
        tokenizer.save_pretrained(args.save_text_model)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        cache = TextFeatureCache.build(texts, model.protomol, tokenizer, scratch, args.max_text_length, args.batch_size)
        cache_s = time.perf_counter() - start
        cache_mb = (cache.directory / "states.npy").stat().st_size / 2**20
    bare_s = time_bare_text_model(model, tokenizer, sorted(set(texts)), args)
    on_cuda = args.device.startswith("cuda")
    text_config = model.config.text_config
    results = {
        "dataset": args.dataset_name,
        "num_molecules": len(smiles),
        "distinct_texts": distinct,
        "text_model": args.text_size or args.text_model,
        "text_model_parameters_m": round(sum(p.numel() for p in model.protomol.text_model.parameters()) / 1e6, 1),
        "text_model_shape": {"layers": text_config.num_hidden_layers, "hidden_size": text_config.hidden_size},
        "batch_size": args.batch_size,
        "device": args.device,
        "dtype": args.dtype,
        "cache_s": round(cache_s, 2),
        "bare_text_model_s": round(bare_s, 2),
        "cache_size_mb": round(cache_mb, 1),
        "texts_per_s": {"cache_build": round(distinct / cache_s, 1), "bare_text_model": round(distinct / bare_s, 1)},
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20) if on_cuda else None,
        "machine": {**describe_machine(args.device), "torch_threads": torch.get_num_threads()},
    }
    report_results(results, args.output)
    return results


if __name__ == "__main__":
    main()
