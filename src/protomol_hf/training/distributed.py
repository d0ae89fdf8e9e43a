"""What multi-process and DeepSpeed training needs beyond what transformers and accelerate do: whole modules
under ZeRO-3, the waiting processes' cores lent to the main one, accelerate's record of a CPU DeepSpeed
group, and one dtype for DeepSpeed's half precision."""

import os
from contextlib import contextmanager

import torch
import torch.distributed as dist
from accelerate import PartialState
from accelerate.utils import DistributedType
from transformers import TrainingArguments
from transformers.integrations import deepspeed as hf_deepspeed

from ..modeling_protomol import ProtoMolForMolecularPropertyPrediction
from .arguments import ProtoMolTrainingArguments


@contextmanager
def unpartitioned_construction():
    """Build modules with full weights even when ZeRO-3 is configured.

    transformers otherwise builds the text model inside `deepspeed.zero.Init` (its weights become empty
    shards) while our own modules stay whole, and the text-feature cache runs the text model before
    DeepSpeed exists. DeepSpeed shards the finished model when the Trainer starts; the model is small.
    """
    active = hf_deepspeed._hf_deepspeed_config_weak_ref() if hf_deepspeed._hf_deepspeed_config_weak_ref else None
    hf_deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        if active is not None:
            hf_deepspeed.set_hf_deepspeed_config(active)


@contextmanager
def cores_of_waiting_processes(training_args: TrainingArguments):
    """On CPU, while the main process of a multi-process launch featurizes and caches the text states, the other
    processes on the machine wait at `main_process_first`; lend it their threads (torchrun gives each one)."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if training_args.device.type != "cpu" or local_processes == 1 or training_args.local_process_index != 0:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(min(os.cpu_count() or threads, threads * local_processes))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def repair_cpu_deepspeed_state():
    """On a machine without GPUs, accelerate starts DeepSpeed's (gloo) process group but records no backend
    and a single process, so data sharding and metric gathers act as if alone. Record the real group."""
    state = PartialState()
    if state.distributed_type == DistributedType.DEEPSPEED and state.backend is None and dist.is_initialized():
        state.backend = dist.get_backend()
        state.num_processes = dist.get_world_size()
        state.process_index = dist.get_rank()
        state.local_process_index = int(os.environ.get("LOCAL_RANK", state.process_index))


def cast_for_deepspeed_half_precision(
    model: ProtoMolForMolecularPropertyPrediction, training_args: ProtoMolTrainingArguments
) -> None:
    """DeepSpeed's bf16 and fp16 modes run the model in that dtype without autocast, and ZeRO-3 converts only
    the parameters: float buffers (BatchNorm statistics, the `eps` of PyG's GINEConv) would stay float32 and
    promote activations back to float32 inside a layer ("mat1 and mat2 must have the same dtype"). Casting
    the whole model first gives every float tensor the dtype DeepSpeed trains in."""
    if training_args.deepspeed_plugin is None:
        return
    if training_args.bf16:
        model.bfloat16()
    elif training_args.fp16:
        model.half()
