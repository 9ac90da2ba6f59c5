"""RFR-Net inpainting demo: upload a photo, paint over what should go, press Run.

    python gradio_app.py [--model DIR_OR_REPO_ID] [--host 127.0.0.1] [--port 7860] [--share]

The model is, in order: --model, the RFR_MODEL environment variable, the package's embedded default model. The same
file runs as a Hugging Face Space (see space/README.md). One inference runs at a time (a queue); results are PNG.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageOps
import torch

from rfr_pipeline import DEFAULT_MODEL, RFRInpaintPipeline
from rfr_pipeline.image_processing import dilate

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
DEFAULT_MAX_PIXELS = 12_000_000  # larger uploads are refused with a message (RFR_MAX_PIXELS overrides)


def resolve_model(name: str | None) -> str:
    name = name or os.environ.get("RFR_MODEL")
    if name:
        return name
    if (Path(DEFAULT_MODEL) / "model_index.json").is_file():
        return DEFAULT_MODEL
    raise SystemExit("no model: pass --model DIR_OR_REPO_ID or set RFR_MODEL (this install has no embedded model)")


def open_image(value, message: str) -> PIL.Image.Image:
    """A PIL image from the editor's file path (or array); a file PIL cannot read becomes a message in the UI."""
    if isinstance(value, np.ndarray):
        return PIL.Image.fromarray(value)
    try:
        image = PIL.Image.open(value)
        image.load()
    except (OSError, ValueError, SyntaxError) as err:  # what PIL raises for files it cannot decode
        raise gr.Error(message) from err
    return image


def painted_mask(editor_value: dict, size: tuple[int, int]) -> np.ndarray:
    """What the user painted, over all layers: a pixel is in the hole if any layer covers it, whatever the colour."""
    hole = np.zeros((size[1], size[0]), bool)
    for layer in editor_value.get("layers") or []:
        if layer is None:
            continue
        layer = open_image(layer, "The painted mask could not be read; please paint it again.")
        if layer.size != size:
            layer = layer.resize(size, PIL.Image.Resampling.NEAREST)
        rgba = np.asarray(layer.convert("RGBA"))
        hole |= rgba[..., 3] > 0  # any paint counts, however faint or dark
    return hole


class Inpainter:
    """Holds the pipeline (loaded once) and turns an editor value into a result or a friendly message."""

    def __init__(self, model: str, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS):
        self.pipe = RFRInpaintPipeline.from_pretrained(model).to(device)
        self.is_default_model = Path(model).resolve() == Path(DEFAULT_MODEL).resolve()
        self.pipe.set_progress_bar_config(disable=True)
        self.max_pixels = max_pixels
        self.output_dir = Path(tempfile.mkdtemp(prefix="rfr-demo-"))

    def __call__(self, editor_value, strategy: str | None = None, dilation: int = 0):
        background = (editor_value or {}).get("background")
        if background is None:
            raise gr.Error("Upload a photo first, then paint over what should go.")
        image = open_image(background, "This file is not an image the demo can read: please upload a PNG, JPEG "
                                       "or WebP photo.")
        image = PIL.ImageOps.exif_transpose(image)  # as the browser shows it, and as it was painted on
        if image.width * image.height > self.max_pixels:
            raise gr.Error(f"This photo is {image.width}×{image.height}; the demo takes up to "
                           f"{self.max_pixels / 1e6:.0f} megapixels. Please upload a smaller one.")
        hole = painted_mask(editor_value, image.size)
        hole = dilate(torch.from_numpy(hole), int(dilation)).numpy()
        if not hole.any():
            raise gr.Error("Paint over the part of the photo to remove (the mask is empty).")
        if hole.all():
            raise gr.Error("The mask covers the whole photo: leave some of it unpainted, so there is something "
                           "to fill the hole from.")
        start = time.perf_counter()
        rgb = image.convert("RGB")
        result = self.pipe(image=rgb, mask_image=PIL.Image.fromarray(hole), strategy=strategy).images[0]
        seconds = time.perf_counter() - start
        path = Path(tempfile.mkstemp(suffix=".png", dir=self.output_dir)[1])
        result.save(path, format="PNG")
        return str(path), f"Done in {seconds:.1f} s ({rgb.width}×{rgb.height}, {100 * hole.mean():.1f} % repainted)."


def examples() -> list[list]:
    rows = []
    for photo in sorted(EXAMPLES.glob("*_photo.png")):
        mask = photo.with_name(photo.name.replace("_photo", "_mask"))
        if mask.is_file():
            rows.append([{"background": str(photo), "layers": [str(mask)], "composite": None}])
    return rows


def build_demo(inpainter: Inpainter) -> gr.Blocks:
    with gr.Blocks(title="RFR-Net inpainting") as demo:
        gr.Markdown("## RFR-Net inpainting\nUpload a photo, paint over what should disappear, press **Run**. "
                    "Brush size, eraser and undo are in the editor's toolbar.")
        if inpainter.is_default_model:
            gr.Markdown("The built-in model is a small demo trained briefly on face photos: it fills holes in "
                        "centred faces (try the first example); other scenes need a model trained on them "
                        "(`--model`).", elem_id="model-note")
        with gr.Row():
            # filepath: the app decodes uploads itself (a clear message for unreadable files); png: lossless layers
            editor = gr.ImageMask(label="Photo — paint the area to remove", type="filepath", format="png",
                                  sources=["upload"],
                                  layers=False, brush=gr.Brush(default_size=24, colors=["#ff3366"], color_mode="fixed"),
                                  eraser=gr.Eraser(default_size=24), elem_id="editor")
            result = gr.Image(label="Result (PNG)", type="filepath", format="png", interactive=False,
                              elem_id="result")
        with gr.Row():
            strategy = gr.Dropdown(["auto", "original", "resize", "crop"], label="Large images",
                                   value=inpainter.pipe.config.default_strategy)  # the checkpoint's own default
            dilation = gr.Slider(0, 32, value=4, step=1, label="Grow the mask by (pixels)")
            run = gr.Button("Run", variant="primary", elem_id="run")
        status = gr.Markdown(elem_id="status")
        run.click(inpainter, inputs=[editor, strategy, dilation], outputs=[result, status], api_name="inpaint",
                  concurrency_limit=1)
        if examples():
            gr.Examples(examples(), inputs=[editor], label="Examples (free to reuse, see examples/LICENSE.md)")
    return demo


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="pipeline folder or Hub repo id")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve the network")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="a public gradio.live link (off by default)")
    parser.add_argument("--max-pixels", type=int, default=int(os.environ.get("RFR_MAX_PIXELS", str(DEFAULT_MAX_PIXELS))))
    parser.add_argument("--max-file-size", default="25mb", help="upload size limit")
    args = parser.parse_args(argv)
    demo = build_demo(Inpainter(resolve_model(args.model), args.device, args.max_pixels))
    launch(demo, args.host, args.port, share=args.share, max_file_size=args.max_file_size)


def launch(demo: gr.Blocks, host: str, port: int, **options):
    """One inference at a time (a queue); errors show their message in the UI (an upload gradio itself cannot decode
    included), never a stack trace."""
    options.setdefault("max_file_size", "25mb")
    return demo.queue(default_concurrency_limit=1).launch(server_name=host, server_port=port, show_error=True,
                                                          **options)


if __name__ == "__main__":
    main()
