"""Convert the real microtubule tomogram crop to MRC (run once; needs ``tifffile``).

Source: the GitHub repository hanjinliu/cylindra, file ``tests/13pf_MT.tif``
at commit 012881907c4c3673c8d0c470a599dd5ccf18746e (BSD-3-Clause, see
``LICENSE-cylindra`` beside this file). The crop is a SIRT reconstruction,
binned 4x, of purified 13-protofilament microtubules, uint8 with the
contrast inverted (protein bright), 10.52 Angstrom per voxel (ImageJ
spacing 1.052 nm), ``(z, y, x) = (36, 206, 94)``, tilt axis Y, beam Z.

The MRC file stores the same values as signed bytes (mode 0, value - 128),
with the voxel size in the header, so that it opens in ChimeraX and IMOD
and :func:`cryolearn.data.read_mrc` reads it (as float32).

Usage::

    pip install tifffile
    python data/real/build_real.py path/to/13pf_MT.tif
"""

import hashlib
import sys
from pathlib import Path

import mrcfile
import numpy as np
import tifffile

VOXEL_SIZE = 10.52  # Angstrom


def main(tif: str) -> None:
    vol = tifffile.imread(tif)
    if vol.shape != (36, 206, 94) or vol.dtype != np.uint8:
        raise ValueError(f"unexpected crop: shape {vol.shape}, dtype {vol.dtype}")
    out = Path(__file__).with_name("13pf_MT.mrc")
    with mrcfile.new(out, overwrite=True) as mrc:
        mrc.set_data((vol.astype(np.int16) - 128).astype(np.int8))
        mrc.voxel_size = VOXEL_SIZE
    print(out, hashlib.sha256(out.read_bytes()).hexdigest())


if __name__ == "__main__":
    main(sys.argv[1])
