"""Writing pipeline folders ready for the Hugging Face Hub: atomic saves and a filled-in model card."""

from __future__ import annotations

import os
import shutil
import tempfile
from copy import deepcopy
from pathlib import Path

import torch
from huggingface_hub import ModelCard, ModelCardData

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
    if output_dir.exists() and not overwrite:
        raise FileExistsError(f"{output_dir} already exists; choose another output folder or allow overwriting")
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", dir=output_dir.parent))
    try:
        pipeline.save_pretrained(staging, **save_kwargs)
        for variant, dtype in (variants or {}).items():
            copy = deepcopy(pipeline.rfrnet).to(dtype)
            copy.save_pretrained(staging / "rfrnet", variant=variant)
        if model_card is not None:
            model_card.save(staging / "README.md")
        if max_megabytes is not None:
            megabytes = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file()) / 1e6
            if megabytes > max_megabytes:
                raise ValueError(f"the pipeline folder would be {megabytes:.1f} MB, over the {max_megabytes:g} MB "
                                 "limit")
        if output_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old.", dir=output_dir.parent))
            output_dir.rename(old / "previous")
            staging.rename(output_dir)
            shutil.rmtree(old)
        else:
            staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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
) -> ModelCard:
    """Fill `model_card.md` (a Jinja template with YAML front matter) for a pipeline holding `model`; `repo_id=None`
    describes the package's embedded default model (loaded as `rfr_pipeline.DEFAULT_MODEL`)."""
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
        num_parameters=f"{sum(p.numel() for p in model.parameters()):,}",
    )
