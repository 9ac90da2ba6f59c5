#!/usr/bin/env python
"""Turn a trained pipeline folder into the package's embedded default model (rfr_pipeline/default_model).

    python scripts/package_default_model.py --pipeline runs/face96/pipeline --evaluation docs/results/default_model \\
        --training-notes docs/default_model_training.md [--strategy resize --working-size 96] [--fp16]

Writes the pipeline with the way it is best served (`default_strategy`, `default_working_size` in model_index.json),
a model card (what the model is, how it was trained, its evaluation table, its limits) and refuses a result larger
than --max-megabytes (the repository keeps it in git). The folder is replaced atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from rfr_pipeline import DEFAULT_MODEL, RFRInpaintPipeline
from rfr_pipeline.hub import RESEARCH_ONLY_LICENCE, render_model_card, save_pipeline_atomically
from rfr_pipeline.pipeline_rfr_inpaint import STRATEGIES

REPO_ROOT = Path(__file__).resolve().parents[1]

DESCRIPTION = (
    "**A demo model, not the paper's.** The default model embedded in the `rfr-pipeline` package: a narrow RFR-Net "
    "trained briefly (hours on a CPU, minutes on one GPU) on {count} aligned face photos from the CelebA test split, "
    "so that `rfr-inpaint`, the demo and the examples work out of the box with no download. It fills holes in "
    "**centred face photos** at about "
    "{size}×{size} pixels; the pipeline resizes larger photos to that size (`default_strategy=\"{strategy}\"`), so fine "
    "detail in large photos comes back soft. For the published model, convert the official weights with "
    "`scripts/convert_official_checkpoint.py`."
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pipeline", required=True, type=Path, help="trained pipeline folder (scripts/train.py)")
    parser.add_argument("--evaluation", required=True, type=Path, help="scripts/evaluate.py output folder")
    parser.add_argument("--training-notes", required=True, type=Path, help="Markdown: how the model was trained")
    parser.add_argument("--num-training-images", type=int, default=8000)
    parser.add_argument("--strategy", default="resize", choices=STRATEGIES, help="the pipeline's default strategy")
    parser.add_argument("--working-size", type=int, help="the pipeline's default working size (default: the model's)")
    parser.add_argument("--fp16", action="store_true", help="store the weights in float16 (half the size)")
    parser.add_argument("--max-megabytes", type=float, default=40)
    parser.add_argument("--output", type=Path, default=Path(DEFAULT_MODEL))
    args = parser.parse_args(argv)

    table = args.evaluation / "metrics.md"
    for path, what in ((table, "an evaluation table (run scripts/evaluate.py)"), (args.training_notes, "notes")):
        if not path.is_file():
            parser.error(f"{path} not found: expected {what}")
    model = RFRInpaintPipeline.from_pretrained(args.pipeline, dtype=torch.float16 if args.fp16 else None).rfrnet
    size = model.config.sample_size
    pipe = RFRInpaintPipeline(rfrnet=model, default_strategy=args.strategy,
                              default_working_size=args.working_size or size)
    card = render_model_card(
        REPO_ROOT / "model_card.md",
        model,
        model_name="rfr-pipeline's default face model (demo)",
        repo_id=None,
        description=DESCRIPTION.format(count=f"{args.num_training_images:,}", size=size, strategy=args.strategy),
        training=args.training_notes.read_text().strip(),
        weights="trained from scratch with `scripts/train.py` (no official weights involved)"
                + (", stored in float16" if args.fp16 else ""),
        domain="aligned, centred face photos like CelebA's",
        licence=RESEARCH_ONLY_LICENCE.format(data="CelebA: non-commercial research purposes only"),
        metrics=("The 200 photos of `data/celeba/val` × the NVIDIA irregular mask test set (one seeded mask per photo "
                 f"and hole-area bin) at {size}², composites, with OpenCV's classical inpainting in the same run "
                 f"(`scripts/evaluate.py --resolution {size}`):\n\n" + table.read_text().strip()),
        datasets=["celeba"],
        tags=["faces", "demo"],
    )

    try:
        output = save_pipeline_atomically(pipe, args.output, overwrite=True, model_card=card,
                                          max_megabytes=args.max_megabytes)
    except ValueError as err:
        print(f"error: {err}: try --fp16 or a narrower model", file=sys.stderr)
        return 1
    megabytes = sum(f.stat().st_size for f in output.rglob("*") if f.is_file()) / 1e6
    print(f"wrote {output} ({megabytes:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
