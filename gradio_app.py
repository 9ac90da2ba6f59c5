"""RFR-Net inpainting demo: upload a photo, paint over what should go, press Run.

    python gradio_app.py [--model scenes|faces|DIR|REPO_ID] [--host 127.0.0.1] [--port 7860] [--share]

The model is, in order: --model, the RFR_MODEL environment variable, else both embedded models, one tab each (the
default model's first). The same file runs as a Hugging Face Space (see space/README.md). One inference runs at a time
per model (a queue); results are PNG.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import tempfile
import time
import weakref
from pathlib import Path

try:
    # On Hugging Face Spaces: on a ZeroGPU Space a GPU is attached only while a function decorated with spaces.GPU
    # runs, and `spaces` must be imported before torch touches CUDA. Elsewhere spaces.GPU returns the function itself.
    import spaces
except ImportError:
    spaces = None
import gradio as gr
import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageOps
import torch
from gradio import processing_utils
from gradio.data_classes import FileData

from rfr_pipeline import DEFAULT_MODEL, EMBEDDED_MODELS
from rfr_pipeline.atomic import atomic_file
from rfr_pipeline.jobs import UsageError, load_pipeline
from rfr_pipeline.pipeline_rfr_inpaint import STRATEGIES

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE / "examples"
DEFAULT_MAX_PIXELS = 12_000_000  # larger uploads are refused with a message (RFR_MAX_PIXELS overrides)
MAX_FILE_SIZE = "25mb"  # Gradio refuses larger uploads (--max-file-size overrides)
# The examples a model is shown with: faces for the embedded face model, scenes for any other. Within a set all photos
# share one size, the editor's canvas size: Gradio places an example's mask layer on a canvas of that size before the
# photo has resized it, so a mask of another size would be drawn offset from what is repainted.
# (Photographs only: on flat synthetic drawings such as examples/ball_photo.png the models blur the edges that
# OpenCV continues.)
EXAMPLE_SETS = {"faces": ["astronaut"], "scenes": ["coffee", "raccoon"]}
API_DESCRIPTION = (
    "Inpaint a photo. The editor value: `background` the photo (any format and mode Pillow reads, up to the demo's "
    "size limit), `layers` a list of masks, each either paint (transparent where nothing is painted: any paint "
    "counts) or a conventional mask (opaque, mode L or RGB: white = repaint, as diffusers takes it), `composite` "
    "ignored. Then the large-image strategy and how many pixels to grow the mask by. Returns the result as a PNG "
    "(the photo's own mode: alpha and 16-bit depth kept) and a status line.")
RESULTS_KEPT_SECONDS = 3600  # results (and Gradio's copies of them) are deleted after an hour
QUEUE_SIZE = 16  # waiting requests beyond these are told the demo is busy
EDITOR_HEIGHT = 480
PAINT = "#ff3366"
PAINT_RGB = (0xFF, 0x33, 0x66)
# zlib level 1: a 12-megapixel result in 0.7 s instead of 3.2 s at PIL's default 6, for a file 17 % larger (measured
# in docs/large-images.md; OpenCV's default is 1 too). Lossless either way.
PNG_COMPRESS_LEVEL = 1
# The brush (and eraser) radius follows the photo: its longer side / BRUSH_DIVISOR (at least MIN_BRUSH_RADIUS px), so
# a stroke covers the same share of a 160-px face as of a 4000-px photo. Gradio's own "auto" is a fixed 25 px, and
# resizing the brush from the server as a photo loads wipes what was painted, so the page does it (JS below).
BRUSH_DIVISOR = 64
MIN_BRUSH_RADIUS = 2
BRUSH_RADIUS = 9  # until a photo is loaded (600-px examples / 64)
NOT_AN_IMAGE = "This file is not an image the demo can read: please upload a PNG, JPEG or WebP photo."
TOO_LARGE = "This photo {size}; the demo takes up to {megapixels} megapixels. Please upload a smaller one."
# The embedded models' tabs: a title, and what the model is good for (shown above its editor).
EMBEDDED_TABS = {
    "scenes": ("Scenes and objects", ("A small model trained briefly on photos of landscapes, streets, rooms and "
                                      "things: it fills a hole with the colours and soft edges around it, smoothly "
                                      "(no fine texture); best on scratches, wires and small objects.")),
    "faces": ("Faces", ("A small model trained briefly on centred face photos: it fills holes in faces (try the "
                        "example); for other photos use the scenes tab.")),
}
CSS = """
/* The result fills its box as the editor's photo fills the editor (Gradio would show it at 1×, however small). */
.rfr-result img { width: 100%; height: 100%; object-fit: contain; }
/* On a phone the editor's tool column would cover the photo's left edge: fit the photo beside it instead. */
@media (max-width: 640px) { .rfr-editor .pixi-target { margin-left: 52px; width: calc(100% - 52px) !important; } }
"""
# The page's own script (Gradio's ImageEditor is used as it is; this file only adds to it):
# - What Run sends. The editor would send three photo-sized PNGs it re-encodes from its canvases (the photo, the
#   paint, and both together), three times per Run: 6 s for a 12-megapixel photo in Chromium before the request
#   even leaves, and the photo as the browser decoded it (16-bit photos cut to 8 bits, transparent pixels turned
#   black). Here it sends the file the user chose, as it is, and the paint layer alone, exported once per edit. A
#   photo that came from a URL (an example) goes the editor's own way.
# - A file the browser cannot draw, or a photo over the size limit, never reaches the app: the page says so at
#   upload, in a note of its own that the next upload or Run clears.
# - The brush follows the photo's size (BRUSH_DIVISOR).
# Editors are reached through window.editor (the one mounted last), so with a tab per model each editor is picked up
# as its tab first shows it.
JS = """
() => {
  const seen = new WeakSet();
  const chosen = new WeakMap();  // editor → the file the user chose, sent as it is
  const exportLayer = (editor, container) => new Promise((resolve, reject) => {
    const bounds = container.getLocalBounds();
    const Rectangle = (bounds.rectangle || bounds).constructor;
    const {pixels, width, height} = editor.app.renderer.extract.pixels(
      {target: container, resolution: 1, frame: new Rectangle(0, 0, editor.width, editor.height)});
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const context = canvas.getContext("2d");
    const data = context.createImageData(width, height);
    data.data.set(pixels);  // (premultiplied colour: only the alpha, where paint is, matters to the app)
    context.putImageData(data, 0, 0);
    canvas.toBlob((blob) => blob ? resolve(blob) : reject(new Error("layer export failed")));
  });
  const sendOriginals = (editor) => {
    const addImage = editor.add_image.bind(editor);
    editor.add_image = async (options) => {
      const result = await addImage(options);
      const image = options && options.image;
      if (image instanceof Blob) chosen.set(editor, image); else chosen.delete(editor);
      return result;
    };
    for (const name of ["add_image_from_url", "reset_canvas"]) {
      const original = editor[name].bind(editor);
      editor[name] = (...args) => { chosen.delete(editor); return original(...args); };
    }
    const getBlobs = editor.get_blobs.bind(editor);
    const exportBlobs = async () => {
      const photo = chosen.get(editor);
      const layers = editor.layer_manager && editor.layer_manager.layers;
      if (!photo || !layers) return getBlobs();
      try {
        return {background: photo, layers: await Promise.all(layers.map((l) => exportLayer(editor, l.container))),
                composite: null};
      } catch (error) {
        console.warn("sending the editor's own export instead:", error);
        return getBlobs();
      }
    };
    // Gradio asks for the value again as the request's status changes (twice more per Run): the same export is
    // reused until the editor changes (a stroke, undo, redo, a new photo).
    // And it is made ahead, half a second after the last edit, so that Run finds it ready.
    let edits = 0, last = null, ahead = null;
    const edited = () => {
      edits += 1;
      clearTimeout(ahead);
      if (chosen.get(editor)) ahead = setTimeout(() => editor.get_blobs(), 500);
    };
    editor.on("change", edited);
    editor.on("input", edited);
    editor.get_blobs = () => {
      const state = {edits, history: editor.command_manager && editor.command_manager.history,
                     photo: chosen.get(editor)};
      if (!last || Object.keys(state).some((key) => state[key] !== last.state[key])) {
        last = {state, blobs: exportBlobs()};
        last.blobs.catch(() => { last = null; });
      }
      return last.blobs;
    };
  };
  const followEditors = () => {
    setTimeout(followEditors, 200);
    const editor = window.editor;
    if (!editor || !editor.dimensions || !editor.tools || seen.has(editor)) return;
    seen.add(editor);
    try {
      sendOriginals(editor);
    } catch (error) {  // an editor of another Gradio version: it sends its own export, as it always did
      console.warn("the editor's own export is sent:", error);
    }
    editor.dimensions.subscribe(({width, height}) => {
      const radius = Math.max(MIN_BRUSH_RADIUS, Math.round(Math.max(width, height) / BRUSH_DIVISOR));
      const brush = editor.tools.get("brush");
      if (!brush || !width || !height) return;
      brush.set_brush_size(radius);
      brush.set_eraser_size(radius);
      window.rfrBrushRadius = radius;
    });
  };
  followEditors();
  const note = (element, text) => {
    const panel = element.closest(".rfr-panel");
    const box = panel && panel.querySelector(".rfr-upload-note");
    if (box) box.textContent = text;
    return panel;
  };
  document.addEventListener("change", async (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || input.type !== "file" || !input.closest(".rfr-editor")) return;
    const file = input.files && input.files[0];
    if (!file) return;
    const panel = note(input, "");
    const url = URL.createObjectURL(file);
    const image = new Image();  // its size comes from the header; the pixels are not decoded until drawn
    try {
      await new Promise((resolve, reject) => { image.onload = resolve; image.onerror = reject; image.src = url; });
    } catch (error) {
      note(input, NOT_AN_IMAGE);
      return;
    } finally {
      URL.revokeObjectURL(url);
    }
    const limit = Number(panel && panel.querySelector(".rfr-upload-note").dataset.maxPixels);
    if (limit && image.naturalWidth * image.naturalHeight > limit) {
      note(input, TOO_LARGE.replace("{size}", `is ${image.naturalWidth}×${image.naturalHeight}`)
                           .replace("{megapixels}", Math.round(limit / 1e6)));
    }
  }, true);
  document.addEventListener("click", (event) => {  // Run: the result's status replaces any upload note
    const button = event.target instanceof Element && event.target.closest(".rfr-run");
    if (button) note(button, "");
  }, true);
}
""".replace("NOT_AN_IMAGE", repr(NOT_AN_IMAGE)).replace("MIN_BRUSH_RADIUS", str(MIN_BRUSH_RADIUS)).replace(
    "BRUSH_DIVISOR", str(BRUSH_DIVISOR)).replace("TOO_LARGE", repr(TOO_LARGE))


def resolve_models(name: str | None) -> dict[str, str]:
    """--model, else RFR_MODEL, else every embedded model (the default first), by tab name."""
    name = name or os.environ.get("RFR_MODEL")
    if name:
        return {name: name}
    return dict(sorted(EMBEDDED_MODELS.items(), key=lambda item: item[1] != DEFAULT_MODEL))  # the default first


def open_image(value, message: str, max_pixels: int | None = None) -> PIL.Image.Image:
    """A PIL image from a file path (or array); a file PIL cannot read becomes `message` in the UI, and a photo over
    `max_pixels` is refused from its header, before anything is decoded."""
    if isinstance(value, np.ndarray):
        return PIL.Image.fromarray(value)
    try:
        image = PIL.Image.open(value)
    except PIL.Image.DecompressionBombError as err:  # PIL's own limit, far over ours: the header said so
        raise gr.Error(too_large(None, None, max_pixels or DEFAULT_MAX_PIXELS)) from err
    except (OSError, ValueError, SyntaxError) as err:  # what PIL raises for files it cannot decode
        raise gr.Error(message) from err
    if max_pixels is not None and image.width * image.height > max_pixels:
        raise gr.Error(too_large(image.width, image.height, max_pixels))
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as err:  # a truncated or corrupt body behind a valid header
        raise gr.Error(message) from err
    return image


def too_large(width, height, max_pixels) -> str:
    size = f"is {width}×{height}" if width else "is far larger than that"
    return TOO_LARGE.format(size=size, megapixels=f"{max_pixels / 1e6:.0f}")


class PhotoEditor(gr.ImageEditor):
    """`gr.ImageEditor` that hands the app the uploaded files as they are. Gradio's own preprocessing decodes every
    upload and re-encodes it in the format of its name: JPEGs (RGBA cannot be JPEG) and other formats fail, and a
    huge photo is decoded before the app could refuse it. Here the app opens the files itself: any format PIL reads,
    oversized photos refused from their header, unreadable files answered with the app's message."""

    is_template = True  # the browser side is ImageEditor's own

    def convert_and_format_image(self, file, flatten_on_white: bool = False) -> str | None:
        if file is None:
            return None
        if isinstance(file, FileData):
            return file.path  # an upload already in Gradio's cache
        return processing_utils.save_bytes_to_cache(bytes(file), "image.png", cache_dir=self.GRADIO_CACHE)


def painted_mask(editor_value: dict, size: tuple[int, int]) -> np.ndarray:
    """The hole, over all layers. A layer with transparent pixels is paint (the editor's, or an API caller's): a pixel
    is in the hole wherever it has paint, however faint or dark. An opaque layer (mode L or RGB, or RGBA with every
    pixel opaque) is a conventional mask, as diffusers and `RFRInpaintPipeline` take it: white (≥ 128) = repaint."""
    hole = np.zeros((size[1], size[0]), bool)
    for layer in editor_value.get("layers") or []:
        if layer is None:
            continue
        layer = open_image(layer, "The painted mask could not be read; please paint it again.")
        if layer.size != size:
            layer = layer.resize(size, PIL.Image.Resampling.NEAREST)
        rgba = np.asarray(layer.convert("RGBA"))
        alpha = rgba[..., 3]
        if alpha.min() == 255 and not (rgba[..., :3] == PAINT_RGB).all():  # (all painted over: paint, not a mask)
            hole |= np.asarray(layer.convert("L")) >= 128
        else:
            hole |= alpha > 0
    return hole


def inpaint_keeping_bit_depth(pipe, image: PIL.Image.Image, hole: np.ndarray, **options) -> PIL.Image.Image:
    """The pipeline's result for any image PIL opens. It keeps alpha and grayscale itself (PIL outputs); a 16-bit
    grayscale photo comes back 16-bit, so that no pixel outside the hole changes."""
    mask = PIL.Image.fromarray(hole)
    if image.mode in ("I;16", "I;16B", "I;16L", "I") and np.asarray(image).max() > 255:
        filled = pipe(image=image, mask_image=mask, output_type="np", **options).images[0][..., 0]
        return PIL.Image.fromarray((filled * 65535).round().astype(np.uint16))
    return pipe(image=image, mask_image=mask, **options).images[0]


_PIPELINES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # each Inpainter's, by id


def on_a_lent_gpu(function):
    """`spaces.GPU` where the `spaces` package is present (on a ZeroGPU Space the call then runs with a GPU attached;
    on other Spaces and machines the decorator changes nothing), the function itself where it is not."""
    return spaces.GPU(function) if spaces is not None else function


@on_a_lent_gpu
def inpaint_on_device(pipeline_id: int, image: PIL.Image.Image, hole: np.ndarray, options: dict) -> PIL.Image.Image:
    """The inference of one request, alone: ZeroGPU runs it in a worker with the GPU, so it takes what pickles (the
    pipeline by its id, loaded at start-up as ZeroGPU expects) and returns the result image."""
    return inpaint_keeping_bit_depth(_PIPELINES[pipeline_id], image, hole, **options)


PANEL_SIDE = 320  # the longer side of each panel of the hole-closing view, in pixels


@on_a_lent_gpu
def hole_closing_on_device(pipeline_id: int, image: PIL.Image.Image, hole: np.ndarray, options: dict
                           ) -> PIL.Image.Image:
    """The paper's picture of the recurrence, for this photo: one panel per iteration, the photo as filled where the
    network had reasoned about the hole by then, the hole's paint where it had not yet (`iteration_panels`). The
    regions are the network's own (`callback_on_step_end`), each window's placed on the photo."""
    import torch.nn.functional as F

    pipe = _PIPELINES[pipeline_id]
    scale = min(1.0, PANEL_SIDE / max(image.size))
    size = (max(1, round(image.height * scale)), max(1, round(image.width * scale)))
    iterations = pipe.rfrnet.config.num_iterations
    # Per pixel, the iteration that reached it in the last forward that had it in its hole (a deep hole's core is
    # filled by a coarse forward first, then known to the forward that fills the band around it); -1: none yet.
    reached = np.full(size, -1, np.int16)
    before: dict[int, np.ndarray] = {}  # this forward's windows, as reached after the previous iteration

    def on_panel(mask, height, width, box_size) -> np.ndarray:
        return (F.interpolate(mask[None, :, :height, :width].float(), size=box_size)[0, 0] > 0.5).cpu().numpy()

    def follow(pipeline, step, iteration, callback_kwargs):
        for n, (region, start, (_, top, left, bottom, right, height, width)) in enumerate(zip(
                callback_kwargs["known_region"], callback_kwargs["known_mask"], callback_kwargs["window"].tolist())):
            t, l = round(top * scale), round(left * scale)
            box_size = (max(1, round(bottom * scale) - t), max(1, round(right * scale) - l))
            if iteration == 0:
                before[n] = on_panel(start, height, width, box_size)
            now = on_panel(region, height, width, box_size)
            reached[t:t + box_size[0], l:l + box_size[1]][now & ~before[n]] = iteration
            before[n] = now
        return {}

    result = pipe(image=image.convert("RGB"), mask_image=PIL.Image.fromarray(hole), callback_on_step_end=follow,
                  callback_on_step_end_tensor_inputs=["known_region", "window", "known_mask"], **options).images[0]
    small_hole = np.asarray(PIL.Image.fromarray(hole).resize(size[::-1], PIL.Image.Resampling.NEAREST))
    return iteration_panels(result.resize(size[::-1], PIL.Image.Resampling.LANCZOS), small_hole, reached, iterations)


def iteration_panels(result: PIL.Image.Image, hole: np.ndarray, reached: np.ndarray, iterations: int,
                     columns: int = 3) -> PIL.Image.Image:
    """A grid of `iterations` panels: in panel k the hole's pixels not reached by iteration k (`reached` > k, or -1:
    never) keep the paint colour, the rest show the result."""
    width, height = result.size
    rows = -(-iterations // columns)
    label = 18
    grid = PIL.Image.new("RGB", (columns * width, rows * (height + label)), "white")
    draw = PIL.ImageDraw.Draw(grid)
    pixels = np.asarray(result.convert("RGB"))
    for k in range(iterations):
        panel = np.where((hole & ((reached > k) | (reached < 0)))[..., None], np.array(PAINT_RGB, np.uint8), pixels)
        x, y = (k % columns) * width, (k // columns) * (height + label)
        grid.paste(PIL.Image.fromarray(panel), (x, y + label))
        draw.text((x + 4, y + 3), f"after iteration {k + 1}", fill="black")
    return grid


def release_freed_memory() -> None:
    """Hand the memory a request freed back to the system. glibc keeps freed blocks in its heaps for reuse, and the
    blocks of photos of ever new sizes do not fit one another, so without this a server's resident size climbs with
    every request (benchmarks/benchmark_demo.py --soak measures it). Nothing where the C library is not glibc."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None) if os.name == "posix" else None


class Inpainter:
    """Holds the pipeline (loaded once) and turns an editor value into a result or a friendly message."""

    def __init__(self, model: str, device: str = "cpu", max_pixels: int = DEFAULT_MAX_PIXELS,
                 examples: str | None = None):
        self.pipe = load_pipeline(model, device)
        _PIPELINES[id(self.pipe)] = self.pipe
        path = Path(EMBEDDED_MODELS.get(model, model)).resolve()
        # which embedded model this is, if any: it decides the note shown with it and its examples
        self.embedded_name = next((key for key, folder in EMBEDDED_MODELS.items() if Path(folder).resolve() == path),
                                  None)
        self.examples = examples or ("faces" if self.embedded_name == "faces" else "scenes")
        if self.examples not in EXAMPLE_SETS and self.examples != "none":
            raise ValueError(f"examples must be one of {', '.join(EXAMPLE_SETS)} or none, got {self.examples!r}")
        self.max_pixels = max_pixels
        self.output_dir = Path(tempfile.mkdtemp(prefix="rfr-demo-"))
        weakref.finalize(self, shutil.rmtree, self.output_dir, True)  # and everything in it, when the app ends

    def request(self, editor_value) -> tuple[PIL.Image.Image, np.ndarray]:
        """The photo and its painted hole from an editor value, or a message saying what is missing."""
        background = (editor_value or {}).get("background")
        if background is None:
            raise gr.Error("Upload a photo first, then paint over what should go.")
        image = open_image(background, NOT_AN_IMAGE, self.max_pixels)
        image = PIL.ImageOps.exif_transpose(image)  # as the browser shows it, and as it was painted on
        hole = painted_mask(editor_value, image.size)
        if not hole.any():
            raise gr.Error("Paint over the part of the photo to remove (the mask is empty).")
        if hole.all():
            raise gr.Error("The mask covers the whole photo: leave some of it unpainted, so there is something "
                           "to fill the hole from.")
        return image, hole

    def hole_closing(self, editor_value, strategy: str | None = None, dilation: int = 0) -> str:
        """The hole-closing view of a request (`hole_closing_on_device`), as a PNG file."""
        image, hole = self.request(editor_value)
        panels = hole_closing_on_device(id(self.pipe), image, hole, {"strategy": strategy,
                                                                      "mask_dilation": int(dilation)})
        path = self.result_path(None).with_name("hole-closing.png")
        with atomic_file(path) as tmp:
            panels.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        release_freed_memory()
        return str(path)

    def __call__(self, editor_value, strategy: str | None = None, dilation: int = 0):
        background = (editor_value or {}).get("background")
        image, hole = self.request(editor_value)
        start = time.perf_counter()
        result = inpaint_on_device(id(self.pipe), image, hole, {"strategy": strategy, "mask_dilation": int(dilation)})
        seconds = time.perf_counter() - start
        path = self.result_path(background if isinstance(background, str) else None)
        with atomic_file(path) as tmp:
            result.save(tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        release_freed_memory()
        return str(path), (f"Done in {seconds:.1f} s ({image.width}×{image.height}, {100 * hole.mean():.1f} % "
                           "painted).")

    def result_path(self, upload: str | None) -> Path:
        """A fresh folder per result, so that the download is named after the upload (`photo-inpainted.png`);
        results older than RESULTS_KEPT_SECONDS are deleted first."""
        for old in self.output_dir.iterdir():
            if time.time() - old.stat().st_mtime > RESULTS_KEPT_SECONDS:
                shutil.rmtree(old, ignore_errors=True)
        stem = re.sub(r"[^\w.-]+", "_", Path(upload).stem)[:80] if upload else ""
        if not stem or stem in ("image", "blob", "background"):  # the browser's re-encoded canvas has no name of its own
            stem = "photo"
        return Path(tempfile.mkdtemp(dir=self.output_dir)) / f"{stem}-inpainted.png"


def examples(names: list[str]) -> list[list]:
    rows = []
    for name in names:
        photo, mask = EXAMPLES / f"{name}_photo.png", EXAMPLES / f"{name}_mask.png"
        rows.append([{"background": str(photo), "layers": [str(mask)], "composite": None}])
    return rows


def canvas_size(names: list[str]) -> tuple[int, int]:
    sizes = {PIL.Image.open(EXAMPLES / f"{name}_photo.png").size for name in names}
    if len(sizes) > 1:
        raise ValueError(f"the examples {names} must share one size, not {sorted(sizes)} (see EXAMPLE_SETS)")
    return sizes.pop() if sizes else (512, 512)


def build_demo(inpainters: Inpainter | dict[str, Inpainter]) -> gr.Blocks:
    """One model: its panel. Several (by name, e.g. the embedded `scenes` and `faces`): a tab each, the first one's
    API endpoint `/inpaint` and the others' `/inpaint_<name>`."""
    if isinstance(inpainters, Inpainter):
        inpainters = {"": inpainters}
    with gr.Blocks(title="RFR-Net inpainting", delete_cache=(600, RESULTS_KEPT_SECONDS)) as demo:
        gr.Markdown("## RFR-Net inpainting\nUpload a photo, paint over what should disappear, press **Run**. "
                    "Brush size, eraser and undo are in the editor's toolbar.")
        if len(inpainters) == 1:
            model_panel(*inpainters.values(), "")
        else:
            with gr.Tabs():
                for index, (name, inpainter) in enumerate(inpainters.items()):
                    title = EMBEDDED_TABS[inpainter.embedded_name][0] if inpainter.embedded_name else name
                    with gr.Tab(title, id=name, elem_id=f"tab-{name}"):
                        model_panel(inpainter, "" if index == 0 else name)
    return demo


def model_panel(inpainter: Inpainter, name: str) -> None:
    """Editor, result, options and examples of one model. Elements are found by class (the page may have one panel
    per model); the unnamed panel's ids are plain (`#editor`), a named one's carry its name (`#editor-faces`)."""
    suffix = f"-{name}" if name else ""
    names = EXAMPLE_SETS.get(inpainter.examples, [])
    with gr.Column(elem_classes="rfr-panel"):
        if inpainter.embedded_name:
            gr.Markdown(EMBEDDED_TABS[inpainter.embedded_name][1], elem_id=f"model-note{suffix}")
        with gr.Row(equal_height=True):
            # Both at one height: the editor fits the photo into it, and so does the result, at the same scale.
            editor = PhotoEditor(label="Photo — paint the area to remove", type="filepath", sources=["upload"],
                                 layers=False, canvas_size=canvas_size(names), height=EDITOR_HEIGHT,
                                 brush=gr.Brush(default_size=BRUSH_RADIUS, colors=[PAINT], color_mode="fixed"),
                                 eraser=gr.Eraser(default_size=BRUSH_RADIUS), transforms=(), buttons=[],
                                 elem_id=f"editor{suffix}", elem_classes="rfr-editor")
            result = gr.Image(label="Result (PNG)", type="filepath", format="png", interactive=False,
                              height=EDITOR_HEIGHT, buttons=["download", "fullscreen"], elem_id=f"result{suffix}",
                              elem_classes="rfr-result")
        with gr.Row():
            strategy = gr.Dropdown(list(STRATEGIES), label="Large images",
                                   value=inpainter.pipe.config.default_strategy)  # the checkpoint's own default
            dilation = gr.Slider(0, 32, value=4, step=1, label="Grow the mask by (pixels)")
            run = gr.Button("Run", variant="primary", elem_id=f"run{suffix}", elem_classes="rfr-run")
        # The page's own notes on an upload (JS): a file it cannot draw, a photo over the size limit.
        gr.HTML(f'<div class="rfr-upload-note" data-max-pixels="{inpainter.max_pixels}"></div>',
                elem_id=f"upload-note{suffix}")
        status = gr.Markdown(elem_id=f"status{suffix}", elem_classes="rfr-status")
        run.click(inpainter, inputs=[editor, strategy, dilation], outputs=[result, status],
                  api_name=f"inpaint_{name}" if name else "inpaint", api_description=API_DESCRIPTION,
                  concurrency_limit=1)
        with gr.Accordion("How the hole closes, iteration by iteration", open=False):
            gr.Markdown("RFR-Net fills a hole from its edge inwards: each of its recurrent iterations reasons about a "
                        "ring more of the hole. Here is what it had reached after each one (paint: not yet).")
            show = gr.Button("Show how the hole closes", elem_id=f"show-steps{suffix}", elem_classes="rfr-show-steps")
            steps = gr.Image(label="After each iteration", type="filepath", format="png", interactive=False,
                             buttons=["download", "fullscreen"], elem_id=f"steps{suffix}", elem_classes="rfr-steps")
        show.click(inpainter.hole_closing, inputs=[editor, strategy, dilation], outputs=[steps],
                   api_name=f"hole_closing_{name}" if name else "hole_closing", concurrency_limit=1,
                   api_description="The photo as it is filled after each recurrent iteration of the network "
                                   "(one panel per iteration; the paint colour marks what is not reached yet). "
                                   "Same inputs as /inpaint.")
        if names:
            gr.Examples(examples(names), inputs=[editor], label="Examples (free to reuse, see examples/LICENSE.md)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="an embedded model by name (scenes, faces), a pipeline folder or a Hub repo "
                                        "id (default: the embedded models, a tab each)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    # Hugging Face Spaces set GRADIO_SERVER_NAME=0.0.0.0 (and the port): an explicit default here would override it
    # and leave the Space's proxy nothing to reach.
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="0.0.0.0 to serve the network (default: GRADIO_SERVER_NAME, else 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    parser.add_argument("--share", action="store_true", help="a public gradio.live link (off by default)")
    parser.add_argument("--max-pixels", type=int, default=int(os.environ.get("RFR_MAX_PIXELS", str(DEFAULT_MAX_PIXELS))))
    parser.add_argument("--max-file-size", default=MAX_FILE_SIZE, help="upload size limit")
    parser.add_argument("--examples", choices=[*EXAMPLE_SETS, "none"],
                        help="example photos to offer with --model (default: faces for the embedded face model, "
                             "else scenes)")
    parser.add_argument("--queue-size", type=int, default=QUEUE_SIZE,
                        help="requests that may wait; more are told to try again")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        inpainters = {name: Inpainter(model, args.device, args.max_pixels, args.examples)
                      for name, model in resolve_models(args.model).items()}
    except UsageError as err:
        raise SystemExit(f"error: {err}") from None
    launch(build_demo(inpainters if len(inpainters) > 1 else next(iter(inpainters.values()))), args.host, args.port, share=args.share, max_file_size=args.max_file_size,
           queue_size=args.queue_size)


def launch(demo: gr.Blocks, host: str, port: int, queue_size: int = QUEUE_SIZE, **options):
    """One inference at a time, at most `queue_size` waiting (more are told the queue is full and to try again);
    errors show their message in the UI, never a stack trace."""
    options.setdefault("max_file_size", MAX_FILE_SIZE)
    return demo.queue(default_concurrency_limit=1, max_size=queue_size).launch(
        server_name=host, server_port=port, show_error=True, css=CSS, js=JS, **options)


if __name__ == "__main__":
    main()
