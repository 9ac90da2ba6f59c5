#!/usr/bin/env python
"""Train RFR-Net with 🤗 Accelerate: the official losses and two-phase schedule, on one CPU, one GPU or many.

    accelerate launch scripts/train.py --train_data_dir photos/ --output_dir rfr-faces \\
        --resolution 256 --train_batch_size 6 --max_train_steps 350000 --finetune_start_step 350000 ...
    python scripts/train.py ...                              # one process, no launcher
    accelerate launch scripts/train.py --finetune --pretrained_model rfr-faces ...     # phase two on its own
    accelerate launch scripts/train.py --dataset_name user/photos [--streaming] ...  # 🤗 Datasets (Hub or local)

Phase one trains everything at --learning_rate (2e-4); phase two (--finetune, or from --finetune_start_step on)
keeps every BatchNorm's running statistics frozen and trains at --finetune_learning_rate (5e-5), as the official
recipe does. Checkpoints (`accelerator.save_state`) are written atomically as checkpoint-<step>; a run resumed with
--resume_from_checkpoint latest continues with the same data order, masks and optimizer state. The end result is an
RFRInpaintPipeline folder in --output_dir (with a model card), optionally pushed to the Hub.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from rfr_pipeline import RFRInpaintPipeline, RFRNet
from rfr_pipeline.atomic import atomic_file, make_ordinary
from rfr_pipeline.data import (
    ImageColumn,
    InpaintingDataset,
    StreamingInpaintingDataset,
    UnreadableImagesError,
    add_dataset_arguments,
    list_images,
    load_images,
    split_validation,
)
from rfr_pipeline.distributed import end_processes
from rfr_pipeline.evaluation import composite_metrics
from rfr_pipeline.hub import RESEARCH_ONLY_LICENCE, render_model_card, save_pipeline_atomically
from rfr_pipeline.losses import InpaintingLoss, LossWeights
from rfr_pipeline.masks import MaskFolder, MaskGenerator
from rfr_pipeline.vgg import load_vgg16_features

logger = get_logger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[1]



class UsageError(Exception):
    """Something wrong with the command or its data, found before training starts: one line, exit status 2."""


MODEL_PRESETS = {
    "paper": {},
    # the width the CPU measurements of shared/docs/TRAINING_NOTES.md used: 7.8 M parameters
    "slim": {"trunk_channels": 32, "reasoning_channels": [64, 128, 256]},
    "tiny": {"trunk_channels": 8, "reasoning_channels": [8, 16, 16], "tail_channels": 8, "tail_bottleneck_channels": 2},
}
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
RUN_OUTPUTS = {"pipeline", "validation", "logs"}  # besides checkpoint-<step> and pipeline-<step>
RECALIBRATION_EPOCH = 2**31 - 1  # a streamed run's BatchNorm recalibration reads the stream in this epoch's order


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = p.add_argument_group("data")
    data.add_argument("--train_data_dir", nargs="+", help="image folders (searched recursively)")
    add_dataset_arguments(data, instead_of="folders", split="train",
                          streaming="read the dataset as a stream (datasets larger than the disk): each process its "
                                    "own shard, shuffled through a buffer; resumable mid-epoch")
    data.add_argument("--shuffle_buffer", type=int, default=1000, help="examples in the streaming shuffle buffer")
    data.add_argument("--validation_data_dir", help="validation images (default: hold some out of the training data)")
    data.add_argument("--num_validation_images", type=int, default=8)
    data.add_argument("--mask_dir", help="training masks (white = hole); default: generated strokes and rectangles")
    data.add_argument("--brush_width", type=int, nargs=2, default=[10, 24], metavar=("MIN", "MAX"),
                      help="stroke widths of generated masks, in pixels at 256² (scaled with --resolution); "
                           "include thin ones (e.g. 2 24) to train for scratches and fragments")
    data.add_argument("--hole_range", type=float, nargs=2, default=[0.05, 0.6], metavar=("LOW", "HIGH"),
                      help="hole area of generated masks, as fractions of the image")
    data.add_argument("--resolution", type=int, default=256)
    data.add_argument("--min_crop_scale", type=float, default=0.5,
                      help="random training crops span this much of the shorter side or more (1 = whole photo)")
    data.add_argument("--dataloader_num_workers", type=int, default=0)

    model = p.add_argument_group("model")
    model.add_argument("--model_config", default="paper",
                       help=f"a preset ({', '.join(MODEL_PRESETS)}) or a JSON file of RFRNet arguments")
    model.add_argument("--pretrained_model", help="start from these weights (pipeline or RFRNet folder)")
    model.add_argument("--vgg_weights", help="VGG16 weights (torchvision .pth or scripts/prepare_vgg16.py output)")
    model.add_argument("--perceptual_weight", type=float, default=LossWeights.perceptual,
                       help="weight of the VGG16 perceptual term (paper: %(default)s)")
    model.add_argument("--style_weight", type=float, default=LossWeights.style,
                       help="weight of the VGG16 style term (paper: %(default)s); with both 0, pixel losses only and "
                            "no VGG16 needed")
    model.add_argument("--ssim_weight", type=float, default=LossWeights.ssim,
                       help="weight of a 1 − SSIM(composite, truth) term (not in the paper; default %(default)s)")
    model.add_argument("--trainable_modules", nargs="+", metavar="NAME",
                       help="train only these top-level modules of RFRNet (e.g. upsample_conv tail_conv "
                            "tail_bottleneck out_conv: texture from the full-resolution layers, the coarse fill kept); "
                            "default: all")
    model.add_argument("--allow_random_vgg", action="store_true",
                       help="train with a random VGG16 when no weights are found (smoke tests only)")

    opt = p.add_argument_group("optimisation")
    opt.add_argument("--output_dir", default="rfr-model")
    opt.add_argument("--overwrite_output_dir", action="store_true",
                     help="delete a previous run's checkpoints, pipelines, validation images and logs in --output_dir "
                          "first (without it, a folder holding a previous run is refused)")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--train_batch_size", type=int, default=6, help="per process")
    opt.add_argument("--max_train_steps", type=int, default=1000)
    opt.add_argument("--max_train_seconds", type=float, default=None,
                     help="also stop (checkpoint and save as at the last step) once training has run this long")
    opt.add_argument("--gradient_accumulation_steps", type=int, default=1)
    opt.add_argument("--learning_rate", type=float, default=2e-4)
    opt.add_argument("--finetune", action="store_true", help="train in the fine-tune phase from the start")
    opt.add_argument("--finetune_start_step", type=int, help="switch to the fine-tune phase at this step")
    opt.add_argument("--finetune_learning_rate", type=float, default=5e-5)
    opt.add_argument("--recalibrate_batchnorm", type=int, default=0, metavar="BATCHES",
                     help="on entering the fine-tune phase, first re-estimate every BatchNorm's running statistics "
                          "as a plain average over this many training batches (0 = keep them, as the official code)")
    opt.add_argument("--ema_decay", type=float, default=0.0, help="keep an EMA of the weights (0 = off)")
    opt.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default=None)
    opt.add_argument("--channels_last", action="store_true")
    opt.add_argument("--torch_compile", action="store_true")

    ckpt = p.add_argument_group("checkpoints, validation, logging")
    ckpt.add_argument("--checkpointing_steps", type=int, default=500)
    ckpt.add_argument("--checkpoints_total_limit", type=int, default=None)
    ckpt.add_argument("--resume_from_checkpoint", help='"latest" or a checkpoint folder')
    ckpt.add_argument("--save_pipeline_every", type=int, default=0, help="also write pipeline-<step> folders")
    ckpt.add_argument("--validation_steps", type=int, default=500)
    ckpt.add_argument("--logging_steps", type=int, default=10)
    ckpt.add_argument("--report_to", default="tensorboard", help='"tensorboard", "none", or another tracker')
    ckpt.add_argument("--log_level", choices=["debug", "info", "warning"], default="info",
                      help="debug also logs every training example as it is read (its file, process and epoch)")
    ckpt.add_argument("--push_to_hub", action="store_true")
    ckpt.add_argument("--hub_model_id")
    args = p.parse_args(argv)
    if (args.train_data_dir is None) == (args.dataset_name is None):
        p.error("name the training images with --train_data_dir (folders) or --dataset_name (🤗 Datasets), one of them")
    if args.streaming and args.dataset_name is None:
        p.error("--streaming reads a --dataset_name")
    if args.streaming and args.dataloader_num_workers:
        p.error("--streaming reads in the training process: leave --dataloader_num_workers at 0")
    if args.finetune and args.finetune_start_step is not None:
        p.error("--finetune trains in the fine-tune phase throughout; --finetune_start_step switches to it later")
    if args.max_train_seconds is not None and args.max_train_seconds <= 0:
        p.error(f"--max_train_seconds must be positive, got {args.max_train_seconds}")
    if not 0 < args.min_crop_scale <= 1:
        p.error(f"--min_crop_scale must be in (0, 1], got {args.min_crop_scale}")
    if not 1 <= args.brush_width[0] <= args.brush_width[1]:
        p.error(f"--brush_width takes MIN MAX with 1 <= MIN <= MAX, got {args.brush_width}")
    if args.resolution % 16:
        p.error(f"--resolution must be a multiple of 16, got {args.resolution}")
    if min(args.perceptual_weight, args.style_weight, args.ssim_weight) < 0:
        p.error(f"loss weights must be 0 or more, got --perceptual_weight {args.perceptual_weight} "
                f"--style_weight {args.style_weight} --ssim_weight {args.ssim_weight}")
    return args


def model_kwargs(spec: str, resolution: int) -> dict:
    if spec in MODEL_PRESETS:
        kwargs = dict(MODEL_PRESETS[spec])
    elif Path(spec).is_file():
        kwargs = json.loads(Path(spec).read_text())
    else:
        raise UsageError(f"--model_config: {spec!r} is neither a preset ({', '.join(MODEL_PRESETS)}) nor a JSON file")
    return {**kwargs, "sample_size": resolution}


def load_pretrained(path: str) -> RFRNet:
    folder = Path(path)
    return RFRNet.from_pretrained(folder / "rfrnet" if (folder / "rfrnet").is_dir() else folder)


def serving_defaults(path: str | None) -> dict:
    """The serving defaults (`default_strategy`, `default_working_size`, `default_flip_average`) of the pipeline
    folder a run starts from, so that a fine-tuned pipeline is served as the one it came from; {} for none."""
    index = Path(path, "model_index.json") if path else None
    if index is None or not index.is_file():
        return {}
    return {k: v for k, v in json.loads(index.read_text()).items() if k.startswith("default_")}


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first (a save is renamed into place only once complete)."""
    if not output_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in output_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, batches, accelerator=None) -> int:
    """Replace every BatchNorm's running statistics by their plain average over `batches` (train-mode forwards,
    no gradients, weights untouched), averaged over processes. The running statistics that training leaves behind
    follow the last few batches only, and RFR-Net's recurrent iterations share them although their activations
    differ: frozen as they are, they can wreck eval-mode outputs. Returns the number of batches used."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = model.training
    model.train()
    count = 0
    for batch in batches:
        model(batch["image"] * batch["known"], batch["known"])
        count += 1
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
        if accelerator is not None and accelerator.num_processes > 1:
            m.running_mean.copy_(accelerator.reduce(m.running_mean, "mean"))
            m.running_var.copy_(accelerator.reduce(m.running_var, "mean"))
    model.train(was_training)
    return count


def enter_finetune_phase(model: RFRNet, optimizer, learning_rate: float, recalibration_batches=None,
                         accelerator=None) -> None:
    if recalibration_batches is not None:
        used = recalibrate_batchnorm(model, recalibration_batches, accelerator)
        logger.info("re-estimated the BatchNorm statistics over %d batches", used)
    model.enable_finetune_mode()
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


@torch.no_grad()
def run_validation(model, batch, accelerator, step, output_dir: Path):
    was_training = model.training
    model.eval()
    image, known = batch["image"].to(accelerator.device), batch["known"].to(accelerator.device)
    with accelerator.autocast():
        output = model(image, known)
    model.train(was_training)
    hole = 1 - known
    comp = output.float().clamp(0, 1) * hole + image * known
    metrics = {f"val/{name}": values[values.isfinite()].mean().item()  # a perfect composite's PSNR is inf
               for name, values in composite_metrics(comp, image, hole).items() if name != "l1_percent"}
    comp = comp.cpu()
    masked = (image * known + hole * 0.5).cpu()  # holes shown grey
    grid = torch.cat([torch.cat(list(rows), dim=2) for rows in (masked, comp, image.cpu())], dim=1)  # 3 rows
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    folder = output_dir / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    with atomic_file(folder / f"step-{step}.png") as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    for tracker in accelerator.trackers:
        if tracker.name == "tensorboard":
            tracker.writer.add_image("validation (masked / output / truth)", array, step, dataformats="HWC")
    return metrics


def save_checkpoint(accelerator, output_dir: Path, step: int, total_limit: int | None) -> None:
    """save_state into a temporary folder, renamed into place once complete: a run killed mid-save leaves the
    previous checkpoint as the latest loadable one. (Not rfr_pipeline.atomic.atomic_folder: every process writes
    into the staging folder, so its name must be one all processes know, not a random one.)"""
    final = output_dir / f"checkpoint-{step}"
    staging = output_dir / f".checkpoint-{step}.incomplete"
    if accelerator.is_main_process and staging.exists():
        shutil.rmtree(staging)
    accelerator.wait_for_everyone()
    # (Accelerate logs "Sampler state for dataloader 0 saved" here, but writes sampler.bin only for iterable
    # datasets. None is needed: the seedable sampler's order comes from (seed, epoch) alone, and a resumed run skips
    # the batches its epoch has done; tests/test_train.py checks that two processes resume mid-epoch exactly.)
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        make_ordinary(staging)
        os.replace(staging, final)
        if total_limit is not None:
            for old in list_checkpoints(output_dir)[:-total_limit]:
                shutil.rmtree(old)
    accelerator.wait_for_everyone()


def data_description(args) -> str:
    if args.dataset_name is None:
        return ", ".join(args.train_data_dir)
    config = f", configuration {args.dataset_config_name}" if args.dataset_config_name else ""
    return f"the 🤗 dataset {args.dataset_name} (split {args.dataset_split}{config})"


def save_pipeline(model, ema, folder: Path, args, step: int, losses: dict) -> None:
    data = data_description(args)
    card = render_model_card(
        REPO_ROOT / "model_card.md",
        model,
        model_name=f"RFR-Net trained on {data}",
        repo_id=args.hub_model_id or f"your-name/{folder.name}",
        description="Trained with rfr-pipeline's `scripts/train.py`.",
        training=(f"{step} steps on {data} at {args.resolution}², batch {args.train_batch_size} per process × "
                  f"{args.gradient_accumulation_steps} accumulation, Adam lr {args.learning_rate}"
                  + (f", fine-tune phase (frozen BatchNorm statistics, lr {args.finetune_learning_rate})"
                     f" from step {0 if args.finetune else args.finetune_start_step}"
                     if args.finetune or args.finetune_start_step is not None else "")
                  + (f", EMA decay {args.ema_decay}" if args.ema_decay else "")
                  + ". Final training losses: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(losses.items()))),
        weights="trained from scratch" if not args.pretrained_model else f"fine-tuned from {args.pretrained_model}",
        domain="its training images",
        licence=RESEARCH_ONLY_LICENCE.format(data="check the licence of the training data"),
    )
    if ema is not None:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
    try:
        pipeline = RFRInpaintPipeline(rfrnet=model, **serving_defaults(args.pretrained_model))
        save_pipeline_atomically(pipeline, folder, overwrite=True, model_card=card)
    finally:
        if ema is not None:
            ema.restore(model.parameters())


def previous_run(output_dir: Path) -> list[Path]:
    """What an earlier run left in `output_dir`: checkpoints, pipelines, validation images, logs."""
    if not output_dir.is_dir():
        return []
    return sorted(p for p in output_dir.iterdir() if p.name in RUN_OUTPUTS or CHECKPOINT_PATTERN.match(p.name)
                  or re.match(r"^(pipeline-\d+|\.checkpoint-\d+\.incomplete)$", p.name))


def claim_output_dir(accelerator, args, output_dir: Path) -> None:
    """A new run never mixes with a previous one (whose checkpoints `--resume_from_checkpoint latest` would take):
    refuse a folder holding one, unless resuming it or told to overwrite it."""
    found = previous_run(output_dir)
    if found and not args.resume_from_checkpoint:
        if not args.overwrite_output_dir:
            raise UsageError(f"{output_dir} holds a previous run ({', '.join(p.name for p in found[:4])}"
                             f"{', …' if len(found) > 4 else ''}). Pass --resume_from_checkpoint latest to continue "
                             "it, --overwrite_output_dir to delete it and start again, or choose another --output_dir.")
        accelerator.wait_for_everyone()  # every process has looked before the main one deletes
        if accelerator.is_main_process:
            for path in found:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            logger.info("deleted the previous run in %s (--overwrite_output_dir)", output_dir)
    accelerator.wait_for_everyone()


# -- the run, step by step -------------------------------------------------------------------------------------------


@dataclass
class TrainingRun:
    """What the steps below share: the arguments, Accelerate's state, the model and its optimiser, the data."""

    args: argparse.Namespace
    accelerator: Accelerator
    output_dir: Path
    model: torch.nn.Module  # as prepared by Accelerate (DDP-wrapped on several processes)
    unwrapped: RFRNet
    loss_fn: InpaintingLoss
    optimizer: torch.optim.Optimizer
    ema: object | None  # diffusers' EMAModel
    train_set: InpaintingDataset | StreamingInpaintingDataset
    train_loader: torch.utils.data.DataLoader
    val_batch: dict | None
    stream: StreamState | None = None  # --streaming: where the run is in its stream
    global_step: int = 0


def make_accelerator(args) -> Accelerator:
    output_dir = Path(args.output_dir)
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=args.mixed_precision,
        log_with=None if args.report_to == "none" else args.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        # Accelerate's seedable sampler: each epoch's order is drawn from (seed, epoch) alone, identical on every
        # process and after a resume.
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=args.seed),
    )
    level = getattr(logging, args.log_level.upper())
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=max(level, logging.INFO))
    logging.getLogger("rfr_pipeline").setLevel(level)  # (debug: our lines only, not every library's)
    logger.info(accelerator.state, main_process_only=False)
    return accelerator


def freeze_all_but(model: RFRNet, names) -> None:
    """Train only the named top-level modules; the rest keep their weights (and, with --finetune, their BatchNorm
    statistics)."""
    modules = dict(model.named_children())
    unknown = [name for name in names if name not in modules]
    if unknown:
        raise UsageError(f"--trainable_modules: {', '.join(unknown)} not in RFRNet; its modules are "
                         f"{', '.join(modules)}")
    model.requires_grad_(False)
    for name in names:
        modules[name].requires_grad_(True)
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(f"training {', '.join(names)} only ({count:,} parameters)")


def build_model(args, accelerator):
    """The network (new or pretrained), the loss with its VGG16, the optimiser and the optional EMA."""
    if args.pretrained_model:
        model = load_pretrained(args.pretrained_model)
        # sample_size is the resolution a model was trained at (the pipeline serves at twice it by default): a model
        # fine-tuned at another resolution records the new one.
        model.register_to_config(sample_size=args.resolution)
        if defaults := serving_defaults(args.pretrained_model):
            logger.info("the saved pipelines keep the serving defaults of %s: %s", args.pretrained_model,
                        ", ".join(f"{k.removeprefix('default_')} {v}" for k, v in sorted(defaults.items())))
    else:
        model = RFRNet(**model_kwargs(args.model_config, args.resolution))
    weights = LossWeights(perceptual=args.perceptual_weight, style=args.style_weight, ssim=args.ssim_weight)
    logger.info(f"loss: {weights}" + ("" if weights.uses_vgg else ", pixel losses only (no VGG16)"))
    vgg = None
    if weights.uses_vgg:
        try:
            vgg = load_vgg16_features(args.vgg_weights, allow_random=args.allow_random_vgg).to(accelerator.device)
        except (RuntimeError, ValueError, OSError) as err:
            raise UsageError(f"{err} Pass --vgg_weights (see scripts/prepare_vgg16.py), or --allow_random_vgg for a "
                             "smoke test.") from err
    loss_fn = InpaintingLoss(vgg, weights)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if args.trainable_modules:
        freeze_all_but(model, args.trainable_modules)
    lr = args.finetune_learning_rate if args.finetune else args.learning_rate
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    ema = None
    if args.ema_decay:
        from diffusers.training_utils import EMAModel

        ema = EMAModel(model.parameters(), decay=args.ema_decay, model_cls=RFRNet, model_config=model.config)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    return model, loss_fn, optimizer, ema


def build_data(args, accelerator) -> tuple:
    """The training set and its loader, and the fixed validation batch (None without validation images). Folders and
    🤗 Datasets tables: a map-style set, shuffled by Accelerate's seedable sampler once prepared. A stream
    (--streaming): this process's shard, not prepared by Accelerate (each process reads its own)."""
    try:  # empty or missing folders or datasets, too few images to hold some out: the command's fault, in one line
        masks = MaskFolder(args.mask_dir) if args.mask_dir else MaskGenerator(tuple(args.hole_range),
                                                                                brush=tuple(args.brush_width))
        if args.dataset_name is None:
            images = list_images(args.train_data_dir, what="training images")
        else:
            table, column = load_images(args.dataset_name, args.dataset_config_name, args.dataset_split,
                                        args.image_column, args.cache_dir, streaming=args.streaming)
            images = table if args.streaming else ImageColumn(table, column)
        held_out = 0 if args.validation_data_dir else args.num_validation_images
        if args.validation_data_dir:
            val_images = list_images([args.validation_data_dir], what="validation images")[: args.num_validation_images]
        elif args.streaming:  # the stream's first examples, which training then leaves out
            val_images = [row[column] for row in itertools.islice(images, held_out)]
            if len(val_images) < held_out:
                raise ValueError(f"the dataset has {len(val_images)} examples: too few to hold out {held_out} for "
                                 "validation (--num_validation_images)")
        elif isinstance(images, ImageColumn):
            rows, val_rows = split_validation(images.rows, held_out, args.seed)
            images, val_images = ImageColumn(table, column, rows), [ImageColumn(table, column)[i] for i in val_rows]
        else:
            images, val_images = split_validation(images, held_out, args.seed)
    except ValueError as err:
        raise UsageError(str(err)) from None
    if args.streaming:
        train_set = StreamingInpaintingDataset(images, column, args.resolution, masks, seed=args.seed,
                                               process_index=accelerator.process_index,
                                               num_processes=accelerator.num_processes,
                                               min_crop_scale=args.min_crop_scale, shuffle_buffer=args.shuffle_buffer,
                                               exclude=val_images)
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.train_batch_size, drop_last=True)
    else:
        train_set = InpaintingDataset(images, args.resolution, masks, seed=args.seed,
                                      min_crop_scale=args.min_crop_scale)
        train_loader = torch.utils.data.DataLoader(train_set, batch_size=args.train_batch_size, shuffle=True,
                                                   num_workers=args.dataloader_num_workers, drop_last=True)
    val_batch = None
    if val_images:
        val_set = InpaintingDataset(val_images, args.resolution, MaskGenerator(tuple(args.hole_range)),
                                    seed=args.seed + 1, train=False)
        val_batch = torch.utils.data.default_collate([val_set[i] for i in range(len(val_set))])
    return train_set, train_loader, val_batch


class StreamState:
    """Where a streamed run is: its epoch, and how many examples of it each process has read (checkpointed with
    Accelerate's state: a resumed run skips them)."""

    def __init__(self):
        self.epoch, self.rows, self.rows_read = 0, [], 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "rows": self.rows}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.rows = state["epoch"], list(state["rows"])

    def gather(self, accelerator) -> None:
        """Every process's count, into the state the main process saves (call on every process)."""
        rows = torch.tensor([self.rows_read], device=accelerator.device)
        self.rows = accelerator.gather(rows).tolist()


def set_up(args) -> TrainingRun:
    accelerator = make_accelerator(args)
    output_dir = Path(args.output_dir)
    claim_output_dir(accelerator, args, output_dir)
    set_seed(args.seed)  # same initial weights on every process
    model, loss_fn, optimizer, ema = build_model(args, accelerator)
    train_set, train_loader, val_batch = build_data(args, accelerator)
    stream = None
    if args.streaming:
        model, optimizer = accelerator.prepare(model, optimizer)
        stream = StreamState()
        accelerator.register_for_checkpointing(stream)
    else:
        model, optimizer, train_loader = accelerator.prepare(model, optimizer, train_loader)
    if args.torch_compile:
        model = torch.compile(model)
    if stream is None and steps_per_epoch(args, train_loader) == 0:
        raise UsageError(f"{len(train_set)} training images make no full batch of "
                         f"{args.train_batch_size} × {accelerator.num_processes} processes")
    if accelerator.is_main_process:
        accelerator.init_trackers("rfr-net", config={k: str(v) for k, v in vars(args).items()})
    return TrainingRun(args, accelerator, output_dir, model, accelerator.unwrap_model(model), loss_fn, optimizer,
                       ema, train_set, train_loader, val_batch, stream)


def steps_per_epoch(args, train_loader) -> int:
    return math.ceil(len(train_loader) / args.gradient_accumulation_steps)


def resume(run: TrainingRun) -> None:
    """Load the checkpoint named by --resume_from_checkpoint (its weights, optimiser, EMA, step), if any."""
    args = run.args
    if not args.resume_from_checkpoint:
        return
    if args.resume_from_checkpoint == "latest":
        found = list_checkpoints(run.output_dir)
        path = found[-1] if found else None
    else:
        path = Path(args.resume_from_checkpoint)
    if path is None:
        logger.info("no checkpoint in %s: starting a new run", run.output_dir)
        return
    run.accelerator.load_state(str(path))
    run.global_step = int(CHECKPOINT_PATTERN.match(path.name).group(1))
    logger.info("resumed from %s at step %d", path, run.global_step)


def recalibration_batches(run: TrainingRun):
    """Training batches of their own order (the main data order is left as it is), moved to the device; None when
    --recalibrate_batchnorm is 0."""
    args = run.args
    if not args.recalibrate_batchnorm:
        return None
    if run.stream is not None:  # an epoch of its own (the training loop sets its epoch again)
        run.train_set.set_epoch(RECALIBRATION_EPOCH)
        loader = run.train_loader
    else:
        generator = torch.Generator().manual_seed(args.seed * 7919 + run.accelerator.process_index)
        loader = torch.utils.data.DataLoader(run.train_set, batch_size=args.train_batch_size, drop_last=True,
                                             sampler=torch.utils.data.RandomSampler(run.train_set, generator=generator),
                                             num_workers=args.dataloader_num_workers)
    batches = zip(range(args.recalibrate_batchnorm), loader)
    return ({k: v.to(run.accelerator.device) for k, v in batch.items()} for _, batch in batches)


def enter_starting_phase(run: TrainingRun) -> None:
    """A run that starts (or resumes) in the fine-tune phase enters it now; a new one recalibrates first if asked
    (a resumed one has its statistics in the checkpoint)."""
    args = run.args
    if args.finetune and run.global_step == 0:
        enter_finetune_phase(run.unwrapped, run.optimizer, args.finetune_learning_rate, recalibration_batches(run),
                             run.accelerator)
    elif args.finetune or (args.finetune_start_step is not None and run.global_step >= args.finetune_start_step):
        enter_finetune_phase(run.unwrapped, run.optimizer, args.finetune_learning_rate)


def training_step(run: TrainingRun, batch: dict) -> dict[str, torch.Tensor]:
    """Forward, the official loss, backward and (once the accumulation is complete) an optimiser step."""
    accelerator = run.accelerator
    with accelerator.accumulate(run.model):
        image, known = batch["image"], batch["known"]
        with accelerator.autocast():
            output = run.model(image * known, known)
            terms = run.loss_fn(output.float(), image, known)
        accelerator.backward(terms["loss"])
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    return {name: value.detach() for name, value in terms.items()}


class LossLog:
    """Loss terms summed since the last log line; averaged over micro-batches and processes when logged."""

    def __init__(self, device):
        self.sums, self.micro_batches = {}, 0
        self.skipped_images = torch.zeros((), device=device)  # unreadable files passed over, over the whole run
        self.last = {}  # the last logged means, for the model card

    def add(self, terms: dict[str, torch.Tensor], skipped: torch.Tensor) -> None:
        for name, value in terms.items():
            self.sums[name] = self.sums.get(name, 0) + value
        self.micro_batches += 1
        self.skipped_images += skipped.sum()

    def write(self, run: TrainingRun, progress) -> None:
        accelerator = run.accelerator
        logs = {f"train/{k}": accelerator.reduce(v, "mean").item() / self.micro_batches for k, v in self.sums.items()}
        logs["train/skipped_images"] = accelerator.reduce(self.skipped_images, "sum").item()
        logs["train/lr"] = run.optimizer.param_groups[0]["lr"]
        accelerator.log(logs, step=run.global_step)
        progress.set_postfix(loss=f"{logs['train/loss']:.4f}")
        self.last = {k.removeprefix("train/"): v for k, v in logs.items() if k != "train/lr"}
        self.sums, self.micro_batches = {}, 0


def after_step(run: TrainingRun, losses: LossLog, progress, last_step: bool) -> None:
    """Everything due after an optimiser step: EMA, the phase switch, logs, checkpoint, validation, pipelines."""
    args, step = run.args, run.global_step
    if run.ema is not None:
        run.ema.step(run.unwrapped.parameters())
    if args.finetune_start_step is not None and step == args.finetune_start_step:
        enter_finetune_phase(run.unwrapped, run.optimizer, args.finetune_learning_rate, recalibration_batches(run),
                             run.accelerator)
        logger.info("step %d: fine-tune phase (frozen BatchNorm statistics, lr %g)", step, args.finetune_learning_rate)
    if step % args.logging_steps == 0 or last_step:
        losses.write(run, progress)
    if step % args.checkpointing_steps == 0 or last_step:
        if run.stream is not None:
            run.stream.gather(run.accelerator)
        save_checkpoint(run.accelerator, run.output_dir, step, args.checkpoints_total_limit)
    if not run.accelerator.is_main_process:
        return
    if run.val_batch is not None and (step % args.validation_steps == 0 or last_step):
        metrics = run_validation(run.unwrapped, run.val_batch, run.accelerator, step, run.output_dir)
        run.accelerator.log(metrics, step=step)
        logger.info("step %d validation: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    if args.save_pipeline_every and step % args.save_pipeline_every == 0:
        save_pipeline(run.unwrapped, run.ema, run.output_dir / f"pipeline-{step}", args, step, losses.last)


def out_of_time(run: TrainingRun, started: float) -> bool:
    """Every process must stop at the same step: as soon as any process's clock is over, all stop."""
    over = time.monotonic() - started > run.args.max_train_seconds
    return run.accelerator.reduce(torch.tensor(float(over), device=run.accelerator.device), "max").item() > 0


def epoch_batches(run: TrainingRun, epoch: int):
    """The batches of one epoch still to train on. Folders and tables: the seeded order, less the batches a resumed
    run's epoch has done. A stream: this process's shard, less the examples a resumed run has read; the epoch ends for
    every process when any process's shard has no full batch left (so that all take the same steps)."""
    args, accelerator = run.args, run.accelerator
    run.train_set.set_epoch(epoch)  # crops, flips and masks (and a stream's order)
    if run.stream is None:
        per_epoch = steps_per_epoch(args, run.train_loader)
        done_in_epoch = run.global_step - epoch * per_epoch
        loader = run.train_loader
        if done_in_epoch:
            loader = accelerator.skip_first_batches(run.train_loader, done_in_epoch * args.gradient_accumulation_steps)
        loader.set_epoch(epoch)  # the order
        yield from loader
        return
    if run.stream.epoch == epoch and run.stream.rows:  # resumed mid-epoch
        run.train_set.start_at(run.stream.rows[accelerator.process_index])
    run.stream.epoch, run.stream.rows_read = epoch, run.train_set.start
    batches = iter(run.train_loader)
    while True:
        batch = next(batches, None)
        every_process_has_one = accelerator.reduce(torch.tensor(float(batch is not None), device=accelerator.device),
                                                   "min").item() > 0
        if not every_process_has_one:
            return
        run.stream.rows_read = int(batch.pop("row").max()) + 1
        yield {name: value.to(accelerator.device) for name, value in batch.items()}


def train_loop(run: TrainingRun) -> LossLog:
    """Steps until --max_train_steps, or --max_train_seconds (checked every logging_steps: the check waits for the
    device); a resumed run continues mid-epoch where its checkpoint left off."""
    args, accelerator = run.args, run.accelerator
    progress = tqdm(total=args.max_train_steps, initial=run.global_step, desc="steps",
                    disable=not accelerator.is_local_main_process)
    losses = LossLog(accelerator.device)
    epoch = run.stream.epoch if run.stream is not None else run.global_step // steps_per_epoch(args, run.train_loader)
    started = time.monotonic()
    run.model.train()
    last_step = run.global_step >= args.max_train_steps  # a resumed, finished run trains no further
    while not last_step:
        trained = False
        for batch in epoch_batches(run, epoch):
            trained = True
            losses.add(training_step(run, batch), batch["skipped"])
            if not accelerator.sync_gradients:
                continue
            run.global_step += 1
            progress.update(1)
            last_step = run.global_step >= args.max_train_steps or bool(
                args.max_train_seconds is not None and run.global_step % args.logging_steps == 0
                and out_of_time(run, started))
            after_step(run, losses, progress, last_step)
            if last_step:
                if run.global_step < args.max_train_steps:
                    logger.info("step %d: stopping, --max_train_seconds %g reached", run.global_step,
                                args.max_train_seconds)
                break
        if not trained and not last_step and (run.stream is None or run.stream.rows_read == 0):
            raise UsageError(f"the stream gave no full batch of {args.train_batch_size} on every one of "
                             f"{accelerator.num_processes} processes in epoch {epoch}")
        epoch += 1
    progress.close()
    return losses


def finish(run: TrainingRun, losses: LossLog) -> None:
    """Check that every process holds the same weights, save (and push) the pipeline, and shut down cleanly."""
    accelerator, args = run.accelerator, run.args
    accelerator.wait_for_everyone()
    # Every process must end with the same weights (DDP keeps them in step); check rather than assume.
    checksum = torch.stack([p.detach().double().sum() for p in run.unwrapped.parameters()]).sum()[None]
    checksums = accelerator.gather(checksum).tolist()
    logger.info("final weight checksum of each process: %s", checksums)
    if max(checksums) - min(checksums) > 1e-6 * max(1.0, abs(checksums[0])):
        raise RuntimeError(f"processes ended with different weights: {checksums}")
    if accelerator.is_main_process:
        final = run.output_dir / "pipeline"
        save_pipeline(run.unwrapped, run.ema, final, args, run.global_step, losses.last)
        logger.info("saved the pipeline to %s", final)
        if args.push_to_hub:
            from huggingface_hub import HfApi

            repo_id = args.hub_model_id or final.resolve().parent.name
            HfApi().create_repo(repo_id, exist_ok=True)
            HfApi().upload_folder(folder_path=final, repo_id=repo_id, commit_message=f"RFR-Net, step {run.global_step}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    end_processes(0)  # in a launch: the group closed and the process ended here


def train(args) -> None:
    run = set_up(args)
    resume(run)
    enter_starting_phase(run)
    # The data pipeline guarantees finite images and binary masks: skip the checks that wait for the device.
    with run.unwrapped.value_checks(False):
        losses = train_loop(run)
    finish(run, losses)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (UsageError, UnreadableImagesError) as err:
        # One line, from one process (every process of a launch finds the same fault). Under `accelerate launch`
        # the launcher then reports the failed process itself and exits 1 (`accelerate launch -q`: no traceback).
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, UsageError) else 1
    except KeyboardInterrupt:  # Ctrl-C (every process of a launch gets it): where to pick up, in one line
        if os.environ.get("RANK", "0") == "0":
            found = list_checkpoints(Path(args.output_dir)) if Path(args.output_dir).is_dir() else []
            print("interrupted; " + (f"the last checkpoint is {found[-1]}: run the same command with "
                                     "--resume_from_checkpoint latest to continue" if found else
                                     "no checkpoint was written yet"), file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
