#!/usr/bin/env python3
"""Generate the still-image fixtures and goldens under Tests/Fixtures/images/.

Reference: Pillow's Image.resize (src/libImaging/Resample.c) and transformers'
CLIPImageProcessorPil (the PIL backend of the CLIP image processor, transformers 5.x).

Outputs (all deterministic):
  pattern_*.png/.bmp/.ppm, rgba_40x30.png, grey_33x21.png, palette_20x12.png,
  photo_64x48.jpg                      small still images for ImageIO tests
  images.json                          for each file: size and PIL's RGB decode
                                       (after transformers' convert_to_rgb, i.e. alpha
                                       composited onto white), base64 uint8
  resize_golden.json                   PIL resize of the synthetic `pattern` image
                                       (formula shared with the Swift tests) to many sizes
  processor_golden.json                CLIPImageProcessorPil output for a few configs
  configs/v4/preprocessor_config.json  transformers 4.x layout (save_pretrained)
  configs/v5/processor_config.json     transformers 5.x layout (image_processor section)

Run from the repository root:  python3 Tools/make_image_fixtures.py
"""
import base64
import io
import json
import os
import sys

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "images")
MASK32 = 0xFFFFFFFF


def pattern(w, h):
    """The synthetic test image, uint8 [h, w, 3]; integer-only so Swift reproduces it exactly.

    A diagonal gradient, a checker of hashed noise cells, a magenta rectangle (hard 0/255
    edges, exercises clipping) and a green disc.
    """
    img = np.zeros((h, w, 3), dtype=np.uint8)
    rx0, ry0 = w // 5, h // 6
    rx1, ry1 = rx0 + max(1, w // 4), ry0 + max(1, h // 5)
    cx, cy, m = (2 * w) // 3, (2 * h) // 3, min(w, h)
    for y in range(h):
        for x in range(w):
            for c in range(3):
                if rx0 <= x < rx1 and ry0 <= y < ry1:
                    v = (255, 0, 255)[c]
                elif ((x - cx) * (x - cx) + (y - cy) * (y - cy)) * 16 <= m * m:
                    v = (30, 220, 10)[c]
                elif (x // 4 + y // 4) % 3 == 0:
                    n = (x * 374761393 + y * 668265263 + c * 2246822519) & MASK32
                    n = ((n ^ (n >> 13)) * 1274126177) & MASK32
                    v = (n ^ (n >> 16)) & 255
                else:
                    v = ((x * 255) // max(1, w - 1) * (c + 1) + (y * 255) // max(1, h - 1) * (3 - c)) // 4
                img[y, x, c] = v
    return img


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def to_rgb_like_transformers(im: Image.Image) -> np.ndarray:
    from transformers.image_transforms import convert_to_rgb

    return convert_to_rgb(im, return_numpy=True)


def write_images():
    files = {}

    def save(name, im, **kw):
        path = os.path.join(OUT, name)
        im.save(path, **kw)
        # What the transformers processor would see: PIL decode + convert_to_rgb.
        with Image.open(path) as re:
            rgb = to_rgb_like_transformers(re)
        files[name] = {"width": rgb.shape[1], "height": rgb.shape[0], "mode": im.mode, "rgb_b64": b64(rgb.tobytes())}

    for w, h in [(97, 61), (61, 97), (17, 23)]:
        save(f"pattern_{w}x{h}.png", Image.fromarray(pattern(w, h)), optimize=True)
    small = Image.fromarray(pattern(17, 23))
    save("pattern_17x23.bmp", small)
    save("pattern_17x23.ppm", small)

    rgb = pattern(40, 30)
    alpha = np.zeros((30, 40), dtype=np.uint8)
    for y in range(30):
        for x in range(40):
            alpha[y, x] = 0 if x < 4 else (255 if x >= 36 else (x * 37 + y * 11) % 256)
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)
    save("rgba_40x30.png", Image.fromarray(rgba, "RGBA"))

    grey = pattern(33, 21)[..., 1].copy()
    save("grey_33x21.png", Image.fromarray(grey, "L"))

    pal = Image.fromarray(pattern(20, 12)).quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    save("palette_20x12.png", pal)

    # A smooth "photo" (JPEG's natural content): gradients and soft blobs.
    yy, xx = np.mgrid[0:48, 0:64].astype(np.float64)
    photo = np.stack([
        128 + 100 * np.sin(xx / 9.0) * np.cos(yy / 13.0),
        90 + 80 * np.exp(-((xx - 40) ** 2 + (yy - 20) ** 2) / 200.0) + yy,
        60 + xx * 2.0,
    ], axis=-1)
    photo = np.clip(np.round(photo), 0, 255).astype(np.uint8)
    save("photo_64x48.jpg", Image.fromarray(photo), quality=92, subsampling=0)  # 4:4:4
    save("photo_64x48_420.jpg", Image.fromarray(photo), quality=90, subsampling=2)  # 4:2:0, Pillow's default

    with open(os.path.join(OUT, "images.json"), "w") as f:
        json.dump({"generator": "Tools/make_image_fixtures.py", "files": files}, f, indent=1, sort_keys=True)


def resize_cases():
    """(src_w, src_h, dst_w, dst_h, resample) — PIL size order is (width, height)."""
    cases = []
    for w, h in [(97, 61), (61, 97), (224, 224), (300, 200), (17, 23)]:
        for dw, dh in [
            (max(1, w * 2 // 5), max(1, h * 3 // 7)),  # downscale both
            (w * 2 + 3, h + 5),                          # upscale both
            (max(1, w // 2), h * 2),                     # mixed
            (w, max(1, h // 2)),                         # vertical pass only
            (max(1, w // 3), h),                         # horizontal pass only
            (1, 1),
            (1, 7),
        ]:
            cases.append((w, h, dw, dh, 3))
        cases.append((w, h, max(1, w * 2 // 3), h * 3 // 2, 2))  # bilinear
    # the other PIL filters (lanczos, box, hamming, mks2013, mks2021)
    cases += [(97, 61, 40, 30, rs) for rs in (1, 4, 5, 6, 7)] + [(17, 23, 41, 9, 1), (17, 23, 50, 60, 7)]
    # Pillow 13 runs the vertical pass first when height shrinks > 2× more pixels than width
    cases += [(17, 23, 41, 9, 3), (97, 61, 90, 20, 3), (61, 97, 61, 30, 3), (224, 224, 200, 100, 3),
              (300, 200, 290, 170, 3), (97, 61, 60, 40, 3), (97, 61, 70, 40, 2)]
    # shortest-edge 224 resizes as the CLIP processor does them
    cases += [(640, 480, 298, 224, 3), (97, 61, 356, 224, 3), (300, 200, 336, 224, 3)]
    return cases


def write_resize_goldens():
    out = []
    cache = {}
    for w, h, dw, dh, rs in resize_cases():
        if (w, h) not in cache:
            cache[(w, h)] = Image.fromarray(pattern(w, h))
        got = np.asarray(cache[(w, h)].resize((dw, dh), resample=rs), dtype=np.uint8)
        raw = got.tobytes()
        entry = {"src": [w, h], "dst": [dw, dh], "resample": rs, "fnv1a64": fnv1a64(raw)}
        if len(raw) <= 12000:
            entry["rgb_b64"] = b64(raw)
        else:
            entry["sample_stride"] = 211
            entry["sample"] = [int(v) for v in got.reshape(-1)[::211]]
        out.append(entry)
    with open(os.path.join(OUT, "resize_golden.json"), "w") as f:
        json.dump({"generator": "Tools/make_image_fixtures.py", "pillow": Image.__version__, "cases": out}, f, indent=0)


CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

CONFIGS = {
    "clip224": {},  # CLIPImageProcessorPil defaults
    "small": {"size": {"shortest_edge": 30}, "crop_size": {"height": 28, "width": 28}},
    "square_bilinear": {"size": {"height": 24, "width": 36}, "resample": 2, "do_center_crop": False,
                        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    "pad": {"do_resize": False, "crop_size": {"height": 32, "width": 12}},
    "no_normalize": {"size": {"shortest_edge": 20}, "crop_size": {"height": 18, "width": 18}, "do_normalize": False},
}


def processor(cfg):
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    return CLIPImageProcessorPil(**cfg)


def write_processor_goldens():
    sizes = {
        "clip224": [(97, 61), (61, 97), (224, 224), (300, 200), (17, 23), (640, 480)],
        "small": [(97, 61), (61, 97), (224, 224), (300, 200), (17, 23)],
        "square_bilinear": [(97, 61), (17, 23)],
        "pad": [(17, 23), (61, 97)],
        "no_normalize": [(61, 97)],
    }
    out = []
    for name, cfg in CONFIGS.items():
        proc = processor(cfg)
        for w, h in sizes[name]:
            im = Image.fromarray(pattern(w, h))
            pv = proc(im, return_tensors="np")["pixel_values"][0]
            assert pv.dtype == np.float32, pv.dtype
            flat = np.ascontiguousarray(pv).reshape(-1)
            entry = {"config": name, "src": [w, h], "shape": list(pv.shape), "sum": float(flat.astype(np.float64).sum())}
            if flat.size <= 4000:
                entry["values_b64"] = b64(flat.astype("<f4").tobytes())
            else:
                entry["sample_stride"] = 37
                entry["sample_b64"] = b64(flat[::37].astype("<f4").tobytes())
            out.append(entry)
    with open(os.path.join(OUT, "processor_golden.json"), "w") as f:
        json.dump({"generator": "Tools/make_image_fixtures.py", "processor": "CLIPImageProcessorPil",
                   "configs": CONFIGS, "cases": out}, f, indent=0)


def write_configs():
    v4 = os.path.join(OUT, "configs", "v4")
    v5 = os.path.join(OUT, "configs", "v5")
    os.makedirs(v4, exist_ok=True)
    os.makedirs(v5, exist_ok=True)
    # 4.x layout: preprocessor_config.json as save_pretrained writes it (the "small" config).
    processor(CONFIGS["small"]).save_pretrained(v4)
    # 5.x layout: processor_config.json with the image processor nested under "image_processor".
    d = processor(CONFIGS["square_bilinear"]).to_dict()
    with open(os.path.join(v5, "processor_config.json"), "w") as f:
        json.dump({"image_processor": d, "processor_class": "CLIPProcessor"}, f, indent=2, sort_keys=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    write_images()
    write_resize_goldens()
    write_processor_goldens()
    write_configs()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
