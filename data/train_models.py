"""Train the committed 3D weights of ``data/models/`` (README.md (committed weights)).

Usage::

    python data/train_models.py cryogen2 --steps 300 --batch-size 32
    python data/train_models.py cryogen1 --steps 150 --batch-size 8

(CryoGEN-I at its default ``lam``, a per-voxel weight: no scaling with the box)

writes ``data/models/cryogen2_3d.pt`` and ``cryogen2_3d.json`` (command,
commit, device, wall time, final metrics on held-out structures). The
training code is the package's own (:func:`cryolearn.methods.pretrained.train_reference`);
a run resumes from ``data/models/.<name>_3d.ckpt`` if interrupted.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

from cryolearn import pick_device
from cryolearn.cli.common import check_options, parse_set
from cryolearn.methods.pretrained import ReferenceSetup, save_pretrained, train_reference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("method", help="cryogen1, cryogen2, cryowgen1 or cryowgen2")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--base-channels", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--n-train", type=int, default=ReferenceSetup.n_train)
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None, help="folder for the weights and the provenance (default: data/models)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="extra method options, checked against the method's configuration (e.g. lam=0.5 potential=true loss=wgan-gp)")
    args = parser.parse_args(argv)
    extra = check_options(args.method, parse_set(args.set))  # typed: checked against the method's configuration
    device = pick_device(args.device)
    setup = ReferenceSetup(n_train=args.n_train)
    folder = Path(args.out) if args.out else Path(__file__).resolve().parent / "models"
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).resolve().parent).stdout.strip()
    start = time.time()
    method, metrics = train_reference(
        args.method, args.steps, setup=setup, device=device, checkpoint=folder / f".{args.method}_3d.ckpt",
        batch_size=args.batch_size, base_channels=args.base_channels, lr=args.lr, **extra,
    )
    wall = time.time() - start
    provenance = {
        "command": "python data/train_models.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "commit": commit,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "wall_time_s": round(wall, 1),
        "steps": method.step,
        "torch": torch.__version__,
        "held_out_metrics": metrics,
        "note": "wall time includes data simulation; a resumed run counts only its last session",
    }
    save_pretrained(method, setup, provenance, root=folder)
    print(json.dumps(provenance, indent=1))


if __name__ == "__main__":
    main()
