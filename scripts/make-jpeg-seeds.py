"""Writes the JPEG seeds of the fuzz harness (crates/ganlab/fixtures/*.jpg): tiny images,
one baseline RGB (4:2:0) and one progressive greyscale, so that mutations reach the
decoder's baseline and progressive paths. Needs Pillow (any recent version):
    python scripts/make-jpeg-seeds.py
"""
import pathlib

from PIL import Image

out = pathlib.Path(__file__).resolve().parent.parent / "crates" / "ganlab" / "fixtures"
out.mkdir(parents=True, exist_ok=True)
rgb = Image.new("RGB", (7, 5))
rgb.putdata([((37 * i) % 256, (91 * i) % 256, (13 * i) % 256) for i in range(35)])
rgb.save(out / "seed-rgb-7x5.jpg", quality=50, subsampling=2, optimize=False)
grey = Image.new("L", (9, 6))
grey.putdata([(29 * i) % 256 for i in range(54)])
grey.save(out / "seed-grey-progressive-9x6.jpg", quality=50, progressive=True)
