#!/usr/bin/env python
"""Convert an official RFR-Net checkpoint (jingyuanli001/RFR-Inpainting) into an RFRInpaintPipeline folder.

    python scripts/convert_official_checkpoint.py --checkpoint checkpoint_celeba.pth --output rfr-celeba
    python scripts/convert_official_checkpoint.py --checkpoint g.pth --output rfr-paris --dataset paris --variant fp16

The folder holds safetensors weights, configs and a filled-in model card (README.md); load it with
`RFRInpaintPipeline.from_pretrained(folder)` and upload it with `scripts/push_to_hub.py`. The conversion is exact
(tests check it against outputs of the official code) and strict: a file that is not an RFR-Net checkpoint is refused.
"""

import argparse
import sys
from pathlib import Path

import torch

from rfr_pipeline import RFRInpaintPipeline, load_official_checkpoint
from rfr_pipeline.hub import RESEARCH_ONLY_LICENCE, render_model_card, save_pipeline_atomically

REPO_ROOT = Path(__file__).resolve().parents[1]

DATASETS = {
    "celeba": ("CelebA faces", "CelebA", "celeba"),
    "paris": ("Paris StreetView façades and street scenes", "Paris StreetView", "paris-streetview"),
    "places2": ("Places2 scenes", "Places2", "places2"),
    "other": ("images like its training data", "its training set", None),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, type=Path, help="official .pth checkpoint file")
    parser.add_argument("--output", required=True, type=Path, help="pipeline folder to create")
    parser.add_argument("--variant", choices=["fp16", "bf16"], help="also store the weights in half precision "
                        "under this variant name (diffusion_pytorch_model.<variant>.safetensors)")
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="other", help="what the checkpoint was trained on")
    parser.add_argument("--sample-size", type=int, default=256, help="resolution the checkpoint was trained at")
    parser.add_argument("--repo-id", default="your-name/rfr-net", help="Hub repo id written into the model card")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        model = load_official_checkpoint(args.checkpoint)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: cannot convert {args.checkpoint}: {err}", file=sys.stderr)
        return 2
    model.register_to_config(sample_size=args.sample_size)
    domain, data_name, dataset_tag = DATASETS[args.dataset]
    pipe = RFRInpaintPipeline(rfrnet=model)

    variants = {args.variant: {"fp16": torch.float16, "bf16": torch.bfloat16}[args.variant]} if args.variant else None
    try:
        output = save_pipeline_atomically(pipe, args.output, overwrite=args.overwrite, variants=variants)
    except FileExistsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    card = render_model_card(
        REPO_ROOT / "model_card.md",
        model,
        model_name=f"RFR-Net ({data_name}), official weights",
        repo_id=args.repo_id,
        description=f"Converted without change from the official RFR-Net checkpoint `{args.checkpoint.name}` "
        "released by the paper's authors; outputs match the official code to about 1e-7.",
        training=f"Trained by the paper's authors on {data_name} with the official recipe (Adam 2e-4, batch 6, "
        "then a fine-tune phase with frozen BatchNorm statistics at 5e-5).",
        weights=f"official checkpoint `{args.checkpoint.name}`, float32"
        + (f" (and a `{args.variant}` variant)" if args.variant else ""),
        domain=domain,
        licence=RESEARCH_ONLY_LICENCE.format(data=f"{data_name} and the official RFR-Net weights"),
        datasets=[dataset_tag] if dataset_tag else None,
    )
    card.save(output / "README.md")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
