#!/usr/bin/env python
"""Turn a trained pipeline folder into one of the package's embedded models: the face model
(rfr_pipeline/faces_model, `--kind faces`) or the general-scene model (rfr_pipeline/scenes_model, `--kind scenes`).

    python scripts/package_default_model.py --pipeline runs/face160/pipeline-1000 \\
        --evaluation docs/results/faces_model docs/results/faces_model_96 \\
        --training-notes docs/faces_model_training.md [--strategy auto --working-size 320 --flip-average] [--fp16]
    python scripts/package_default_model.py --kind scenes --pipeline runs/scenes160/pipeline-2000 \\
        --evaluation docs/results/scenes_model --training-notes docs/scenes_model_training.md --flip-average

Writes the pipeline with the way it is best served (`default_strategy`, `default_working_size` and
`default_flip_average` in model_index.json), a model card (what the model is, how it was trained, its evaluation
tables, its limits) and refuses a result larger than --max-megabytes (the repository keeps it in git). The folder is
replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from rfr_pipeline import FACES_MODEL, SCENES_MODEL, RFRInpaintPipeline
from rfr_pipeline.hub import RESEARCH_ONLY_LICENCE, render_model_card, save_pipeline_atomically
from rfr_pipeline.pipeline_rfr_inpaint import STRATEGIES

REPO_ROOT = Path(__file__).resolve().parents[1]

# What differs between the embedded models: what the card says they are for, trained on what, under which licence.
KINDS = {
    "faces": {
        "output": Path(FACES_MODEL),
        "embedded": ("FACES_MODEL", "faces"),
        "num_training_images": 8000,
        "model_name": "rfr-pipeline's face model (demo)",
        "what": "The face model embedded in the `rfr-pipeline` package",
        "trained_on": "(hours on a CPU, minutes on one GPU) on {count} aligned face photos from the CelebA test split",
        "fills": "**centred face photos**",
        "domain": "aligned, centred face photos like CelebA's",
        "licence_data": "CelebA: non-commercial research purposes only",
        "data_folder": "data/celeba/val",
        "datasets": ["celeba"],
        "tags": ["faces", "demo"],
    },
    "scenes": {
        "output": Path(SCENES_MODEL),
        "embedded": ("SCENES_MODEL", "scenes"),
        "num_training_images": 2719,
        "model_name": "rfr-pipeline's general-scene model (demo)",
        "what": "The general-scene model embedded in the `rfr-pipeline` package (its default model)",
        "trained_on": "(hours on a CPU) on {count} photos of outdoor and indoor scenes and objects (SUN397 and "
                      "ImageNet subsets)",
        "fills": "**photos of scenes and objects** (landscapes, streets, rooms, things)",
        "domain": "natural photos of scenes and objects like SUN397's and ImageNet's",
        "licence_data": "SUN397 and ImageNet: non-commercial research use only",
        "data_folder": "data/scenes/val",
        "datasets": ["sun397", "imagenet-1k"],
        "tags": ["scenes", "demo"],
    },
}
DESCRIPTION = (
    "**A demo model, not the paper's.** {what}: a narrow RFR-Net trained briefly {trained_on}, "
    "so that `rfr-inpaint`, the demo and the examples work out of the box with no download. It fills holes in "
    "{fills}; trained on {size}×{size} crops, it is served {serving}.{flip} For the published model, "
    "convert the official weights with `scripts/convert_official_checkpoint.py`."
)
SERVING = {
    "resize": "by resizing photos larger than {working} px to that size (`default_strategy=\"resize\"`), so fine "
              "detail in large photos comes back soft",
    "auto": "at full size up to {working} px, and beyond that through a window around each hole, scaled to "
            "{working} px when larger and its holes are wide (windows of thin holes stay at full size as far as "
            "memory allows; `default_strategy=\"auto\"`)",
    "crop": "through a window around each hole, scaled to {working} px when larger (`default_strategy=\"crop\"`)",
    "original": "at full size whatever the photo's size (`default_strategy=\"original\"`)",
}
FLIP = (" Each fill is the mean of the network's fills of the photo and of its mirror image "
        "(`default_flip_average=True`: twice the time, and better PSNR, SSIM and L1 than either fill alone).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=KINDS, default="faces", help="which embedded model this is (its card)")
    parser.add_argument("--pipeline", required=True, type=Path, help="trained pipeline folder (scripts/train.py)")
    parser.add_argument("--evaluation", required=True, type=Path, nargs="+",
                        help="scripts/evaluate.py output folders, one table each in the card")
    parser.add_argument("--training-notes", required=True, type=Path, help="Markdown: how the model was trained")
    parser.add_argument("--num-training-images", type=int, help="default: 8,000 faces, 2,719 scenes")
    parser.add_argument("--strategy", default="auto", choices=STRATEGIES, help="the pipeline's default strategy")
    parser.add_argument("--working-size", type=int,
                        help="the pipeline's default working size (default: twice the training resolution)")
    parser.add_argument("--flip-average", action="store_true", help="make flip averaging the pipeline's default")
    parser.add_argument("--sample-size", type=int,
                        help="the training resolution to record in the model's config, when the run recorded another")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    parser.add_argument("--max-megabytes", type=float, default=40)
    parser.add_argument("--output", type=Path, help="default: the kind's folder in the package")
    args = parser.parse_args(argv)
    kind = KINDS[args.kind]
    output = args.output or kind["output"]
    count = args.num_training_images or kind["num_training_images"]

    reports = [folder / name for folder in args.evaluation for name in ("metrics.md", "metrics.json")]
    for path, what in [*((r, "an evaluation report (run scripts/evaluate.py)") for r in reports),
                       (args.training_notes, "notes")]:
        if not path.is_file():
            parser.error(f"{path} not found: expected {what}")
    model = RFRInpaintPipeline.from_pretrained(args.pipeline, dtype=torch.float16 if args.fp16 else None).rfrnet
    if args.sample_size:
        model.register_to_config(sample_size=args.sample_size)
    size = model.config.sample_size
    working = args.working_size or 2 * size
    pipe = RFRInpaintPipeline(rfrnet=model, default_strategy=args.strategy, default_working_size=working,
                              default_flip_average=args.flip_average)
    card = render_model_card(
        REPO_ROOT / "model_card.md",
        model,
        model_name=kind["model_name"],
        repo_id=None,
        description=DESCRIPTION.format(what=kind["what"], trained_on=kind["trained_on"].format(count=f"{count:,}"),
                                       fills=kind["fills"], size=size,
                                       serving=SERVING[args.strategy].format(working=working),
                                       flip=FLIP if args.flip_average else ""),
        training=args.training_notes.read_text().strip(),
        weights="trained from scratch with `scripts/train.py` (no official weights involved)"
                + (", stored in float16" if args.fp16 else ""),
        domain=kind["domain"],
        licence=RESEARCH_ONLY_LICENCE.format(data=kind["licence_data"]),
        metrics="\n\n".join(evaluation_text(folder, kind["data_folder"]) for folder in args.evaluation),
        datasets=kind["datasets"],
        tags=kind["tags"],
        embedded=kind["embedded"],
    )

    try:
        output = save_pipeline_atomically(pipe, output, overwrite=True, model_card=card, ship_code=False,
                                          max_megabytes=args.max_megabytes)
    except ValueError as err:
        print(f"error: {err}: try --fp16 or a narrower model", file=sys.stderr)
        return 1
    megabytes = sum(f.stat().st_size for f in output.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {output} ({megabytes:.1f} MB)")
    return 0


def evaluation_text(folder: Path, data_folder: str) -> str:
    """One evaluation of scripts/evaluate.py: what was measured (from its metrics.json), then its table."""
    report = json.loads((folder / "metrics.json").read_text())
    resolution, photos = report["resolution"], len({row["image"] for row in report["per_image"]})
    return (f"{photos} photos of `{data_folder}` × the NVIDIA irregular mask test set (one seeded mask per photo "
            f"and hole-area bin) at {resolution}², composites, with the pipeline's defaults and OpenCV's classical "
            f"inpainting in the same run (`scripts/evaluate.py --resolution {resolution}`):\n\n"
            + (folder / "metrics.md").read_text().strip())


if __name__ == "__main__":
    sys.exit(main())
