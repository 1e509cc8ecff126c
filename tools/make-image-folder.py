#!/usr/bin/env python3
"""Writes a learnable image folder (one subfolder of JPEGs per class) for recipe runs.

Each class is a shape (disc, square, stripes, ...) in a colour drawn per image over a noisy
background, at a random size and position, in images of random sizes: enough for a model to
learn, nothing to download. Needs Pillow (the GPU machines' Python has it).

  python3 tools/make-image-folder.py OUT --classes 3 --train 100 --val 20 --seed 1
writes OUT/train/class{0,1,2}/*.jpg and OUT/val/class{0,1,2}/*.jpg.
"""
import argparse
import os
import random

from PIL import Image, ImageDraw


def draw(cls, rng, size):
    w, h = size
    img = Image.effect_noise((w, h), 40).convert("RGB")
    d = ImageDraw.Draw(img)
    colour = tuple(rng.randrange(60, 256) for _ in range(3))
    s = rng.randrange(min(w, h) // 4, min(w, h) // 2)
    x, y = rng.randrange(0, w - s), rng.randrange(0, h - s)
    kind = cls % 4
    if kind == 0:
        d.ellipse([x, y, x + s, y + s], fill=colour)
    elif kind == 1:
        d.rectangle([x, y, x + s, y + s], fill=colour)
    elif kind == 2:
        for k in range(0, s, 8):
            d.rectangle([x, y + k, x + s, y + k + 3], fill=colour)
    else:
        d.polygon([(x, y + s), (x + s // 2, y), (x + s, y + s)], fill=colour)
    return img


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--classes", type=int, default=3)
    p.add_argument("--train", type=int, default=100, help="training images per class")
    p.add_argument("--val", type=int, default=20, help="validation images per class")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rng = random.Random(a.seed)
    for split, n in (("train", a.train), ("val", a.val)):
        for c in range(a.classes):
            folder = os.path.join(a.out, split, "class%d" % c)
            os.makedirs(folder, exist_ok=True)
            for i in range(n):
                size = (rng.randrange(160, 321), rng.randrange(160, 321))
                draw(c, rng, size).save(os.path.join(folder, "%04d.jpg" % i), quality=90)


if __name__ == "__main__":
    main()
