"""Writing pipeline folders ready for the Hugging Face Hub: atomic saves and a filled-in model card."""

from __future__ import annotations

import json
import os
from copy import deepcopy
from pathlib import Path

import torch
from huggingface_hub import ModelCard, ModelCardData

from .atomic import atomic_folder

RESEARCH_ONLY_LICENCE = (
    "The weights are derived from data licensed for non-commercial research only ({data}); use them for research "
    "and demonstration, not commercially. The rfr-pipeline code is MIT-licensed."
)


def save_pipeline_atomically(
    pipeline,
    output_dir: str | os.PathLike,
    overwrite: bool = False,
    variants: dict[str, torch.dtype] | None = None,
    model_card: ModelCard | None = None,
    max_megabytes: float | None = None,
    **save_kwargs,
) -> Path:
    """`pipeline.save_pretrained` into a temporary sibling folder, then rename: a crash never leaves a half-written
    `output_dir`. An existing `output_dir` is replaced only with `overwrite`. `variants` ({"fp16": torch.float16})
    adds the model's weights in those dtypes beside the main ones, as diffusers variants; `model_card` is saved as
    its README.md. A folder larger than `max_megabytes` raises ValueError and leaves `output_dir` as it was."""
    output_dir = Path(output_dir).resolve()
    with atomic_folder(output_dir, overwrite=overwrite) as staging:
        pipeline.save_pretrained(staging, **save_kwargs)
        for variant, dtype in (variants or {}).items():
            copy = deepcopy(pipeline.rfrnet).to(dtype)
            copy.save_pretrained(staging / "rfrnet", variant=variant)
        for config_file in staging.rglob("config.json"):  # diffusers records the folder it loaded from: a local path
            config = json.loads(config_file.read_text())
            if config.pop("_name_or_path", None) is not None:
                config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        if model_card is not None:
            model_card.save(staging / "README.md")
        if max_megabytes is not None:
            megabytes = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()) / 1e6
            if megabytes > max_megabytes:
                raise ValueError(f"the pipeline folder would be {megabytes:.1f} MB, over the {max_megabytes:g} MB "
                                 "limit")
    return output_dir


def render_model_card(
    template_path: str | os.PathLike,
    model,
    *,
    model_name: str,
    repo_id: str | None,
    description: str,
    training: str,
    weights: str,
    domain: str,
    licence: str,
    metrics: str = "Not evaluated yet: run `scripts/evaluate.py` and paste its table here.",
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    embedded: tuple[str, str] = ("FACES_MODEL", "faces"),
) -> ModelCard:
    """Fill `model_card.md` (a Jinja template with YAML front matter) for a pipeline holding `model`; `repo_id=None`
    describes one of the package's embedded models, `embedded` = (its constant in `rfr_pipeline`, its `--model`
    name)."""
    config = model.config
    config_text = ", ".join(f"{k}={v}" for k, v in config.items() if not k.startswith("_"))
    card_data = ModelCardData(
        library_name="diffusers",
        pipeline_tag="image-to-image",
        license="other",
        license_name="research-only",
        tags=["inpainting", "rfr-net", "image-inpainting", *(tags or [])],
        datasets=datasets,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_name=model_name,
        repo_id=repo_id,
        description=description,
        training=training,
        weights=weights,
        domain=domain,
        licence=licence,
        metrics=metrics,
        config=config_text,
        sample_size=config.sample_size,
        embedded_constant=embedded[0],
        embedded_name=embedded[1],
        num_parameters=f"{sum(p.numel() for p in model.parameters()):,}",
    )
