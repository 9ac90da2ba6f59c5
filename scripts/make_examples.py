#!/usr/bin/env python
"""Draw the demo's example masks, and synthetic example scenes (examples/*_photo.png with *_mask.png).

`ball` and `post` are scenes drawn here (CC0; inputs of the demo's tests, not offered as examples). `coffee_photo.png` is a photograph by Rachel Michetti, CC0, as shipped
in scikit-image's `skimage/data/coffee.png`; `astronaut_photo.png` is the face in NASA's portrait of Eileen Collins
(public domain), cropped as `astronaut.png[40:200, 142:302]` of scikit-image's copy; `raccoon_1024.jpg` is SciPy's
public-domain raccoon (`scipy.misc.face()`), of which this script makes the 600×400 `raccoon_photo.png`. It draws their
masks: over the spoon; scratches over the raccoon, as on a damaged print; over the mouth and chin, for the embedded
face model; over the big dandelion of `dandelions_photo.jpg` (a 16 MP photograph by Clemens Engelhardt, CC0, as
distributed in Debian's lomiri-wallpapers-16.04 package). Deterministic."""

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter

OUT = Path(__file__).resolve().parents[1] / "examples"


def scene(width: int, height: int, seed: int) -> PIL.Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / height
    sky = np.stack([120 + 60 * y, 170 + 50 * y, 235 - 20 * y], -1)
    ground_line = 0.6 + 0.08 * np.sin(x * rng.uniform(3, 6) + rng.uniform(0, 6))
    grass = np.stack([60 + 40 * y, 120 + 50 * (1 - y), 50 + 20 * y], -1)
    image = np.where((y > ground_line)[..., None], grass, sky)
    image += rng.normal(0, 6, image.shape)  # texture
    return PIL.Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).filter(PIL.ImageFilter.GaussianBlur(0.8))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (w, h, seed, box) in {
        # the size of coffee_photo.png: the demo shows a set of examples on one canvas size (gradio_app.EXAMPLE_SETS)
        "ball": (600, 400, 1, (280, 190, 356, 266)),
        "post": (600, 400, 2, (150, 90, 180, 310)),
    }.items():
        photo = scene(w, h, seed)
        draw = PIL.ImageDraw.Draw(photo)
        if name == "ball":
            draw.ellipse(box, fill=(200, 30, 40))
        else:
            draw.rectangle(box, fill=(90, 60, 40))
        photo.save(OUT / f"{name}_photo.png")
        # The mask is a painted layer: transparent, with the object painted over (a little larger than it).
        layer = PIL.Image.new("RGBA", (w, h), (0, 0, 0, 0))
        l, t, r, b = box
        PIL.ImageDraw.Draw(layer).rounded_rectangle((l - 6, t - 6, r + 6, b + 6), radius=8, fill=(255, 51, 102, 255))
        layer.save(OUT / f"{name}_mask.png")
    # The photograph: paint over the spoon.
    coffee = PIL.Image.open(OUT / "coffee_photo.png")
    layer = PIL.Image.new("RGBA", coffee.size, (0, 0, 0, 0))
    draw = PIL.ImageDraw.Draw(layer)
    draw.line([(412, 66), (398, 150), (380, 240)], fill=(255, 51, 102, 255), width=30)
    draw.ellipse((318, 232, 412, 332), fill=(255, 51, 102, 255))
    layer.save(OUT / "coffee_mask.png")
    # The raccoon, scaled to the scene examples' size: scratches across the photo, thin and thick.
    raccoon = PIL.Image.open(OUT / "raccoon_1024.jpg").convert("RGB")
    raccoon = raccoon.resize((600, 450), PIL.Image.Resampling.LANCZOS).crop((0, 25, 600, 425))
    raccoon.save(OUT / "raccoon_photo.png")
    layer = PIL.Image.new("RGBA", raccoon.size, (0, 0, 0, 0))
    draw = PIL.ImageDraw.Draw(layer)
    for points, width in (([(40, 60), (210, 140), (330, 150)], 6), ([(420, 30), (470, 200), (560, 330)], 10),
                          ([(90, 350), (260, 300), (380, 370)], 4), ([(150, 230), (175, 250)], 14)):
        draw.line(points, fill=(255, 51, 102, 255), width=width, joint="curve")
    layer.save(OUT / "raccoon_mask.png")
    # The face: paint over the mouth and chin, what the embedded face model is trained to fill.
    face = PIL.Image.open(OUT / "astronaut_photo.png")
    layer = PIL.Image.new("RGBA", face.size, (0, 0, 0, 0))
    PIL.ImageDraw.Draw(layer).rounded_rectangle((54, 90, 122, 132), radius=12, fill=(255, 51, 102, 255))
    layer.save(OUT / "astronaut_mask.png")
    # A large photo (5312×2988, 16 MP): the big dandelion and its stalk painted over, 18 % of the photo (an L mask:
    # the size of a painted RGBA layer would be four times as large in the repository).
    dandelions = PIL.Image.open(OUT / "dandelions_photo.jpg")
    mask = PIL.Image.new("L", dandelions.size, 0)
    draw = PIL.ImageDraw.Draw(mask)
    k = dandelions.width / 800  # drawn on an 800-px preview's coordinates
    cx, cy = 235 * k, 143 * k
    draw.ellipse([cx - 150 * k, cy - 125 * k, cx + 150 * k, cy + 125 * k], fill=255)
    draw.line([(cx, cy), (cx + 2 * k, 452 * k)], fill=255, width=int(30 * k))
    mask.save(OUT / "dandelions_mask.png")


if __name__ == "__main__":
    main()
