"""Training from a torch Dataset: MRC files read lazily, reproducible, resumable, and sharded under DDP."""

import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp

from cryolearn.data import MRCDataset, read_subtomograms, simulate_subtomograms, write_mrc
from cryolearn.methods import get_method
from cryolearn.physics import missing_wedge_mask
from cryolearn.training import StepBatches, cleanup, init_distributed
from torch.utils.data import DistributedSampler

BOX, N, STEPS = 8, 12, 4


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mrc")
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool3d(torch.randn(N, 1, BOX, BOX, BOX, generator=g), 3, 1, 1)[:, 0]
    for i in range(N):
        write_mrc(folder / f"{i:02d}.mrc", 3 * x[i] + 1, 10.0)
    return sorted(folder.iterdir())


class CountingDataset(MRCDataset):
    """An MRCDataset that records which items were read."""

    def __init__(self, files):
        super().__init__(files)
        self.read = []

    def __getitem__(self, index):
        self.read.append(int(index))
        return super().__getitem__(index)


def _method(**kw):
    return get_method("cryogen2", mask=missing_wedge_mask((BOX,) * 3, (-60, 60)), sigma=0.5, base_channels=2,
                      batch_size=2, seed=1, **kw)


def _params(m):
    return {f"{k}.{n}": p.detach().clone() for k, mod in m._modules().items() for n, p in mod.named_parameters()}


def test_mrc_dataset_reads_lazily_and_normalises_like_read_subtomograms(files):
    ds = CountingDataset(files)
    assert len(ds) == N and ds.shape == (BOX,) * 3 and ds.voxel_size == pytest.approx(10.0) and ds.read == []
    whole, _ = read_subtomograms(files)
    torch.testing.assert_close(ds[3], whole[3])
    assert ds.read == [3]


def test_fit_streams_from_a_lazy_mrc_dataset(files):
    ds = CountingDataset(files)
    m = _method(potential=True).fit(ds, STEPS, progress=False)
    assert m.step == STEPS and len(m.history) == STEPS
    # 2 B = 4 items per step from an epoch-wise permutation of 12: every file once per 3 steps.
    assert len(ds.read) == 4 * STEPS
    assert sorted(ds.read[:12]) == list(range(N))
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in m.history)


def test_same_seed_same_training_and_resume_continues_exactly(files, tmp_path):
    a = _method().fit(MRCDataset(files), STEPS, progress=False)
    b = _method().fit(MRCDataset(files), STEPS, progress=False)
    assert a.history == b.history
    for n, p in _params(a).items():
        assert torch.equal(p, _params(b)[n])
    ckpt = tmp_path / "run.pt"
    _method().fit(MRCDataset(files), 2, progress=False, checkpoint=ckpt)  # interrupted after 2 steps
    ds = CountingDataset(files)
    resumed = _method().fit(ds, STEPS, progress=False, checkpoint=ckpt)
    assert len(ds.read) == 4 * (STEPS - 2)  # the skipped steps' files are not read again
    assert resumed.history == a.history
    for n, p in _params(resumed).items():
        assert torch.equal(p, _params(a)[n]), n


def test_another_seed_draws_other_minibatches(files):
    a, b = CountingDataset(files), CountingDataset(files)
    _method().fit(a, 1, progress=False)
    get_method("cryogen2", mask=missing_wedge_mask((BOX,) * 3), sigma=0.5, base_channels=2, batch_size=2,
               seed=2).fit(b, 1, progress=False)
    assert a.read != b.read


def test_step_batches_are_a_function_of_the_step():
    sampler = DistributedSampler(range(10), num_replicas=1, rank=0, seed=5, drop_last=True)
    it = iter(StepBatches(sampler, 2))
    straight = [next(it) for _ in range(6)]  # 2 steps per epoch (10 // 4), the last 2 items of each epoch dropped
    later = iter(StepBatches(sampler, 2, start=3))
    assert [next(later) for _ in range(3)] == straight[3:]
    assert all(len(b) == 4 for b in straight) and straight[0] != straight[2]


def test_subtomogram_dataset_is_a_dataset_of_observations():
    from cryolearn.data import load_structure_maps

    ds = simulate_subtomograms(load_structure_maps(), n=4, box=8, seed=0)
    assert len(ds) == 4 and torch.equal(ds[1], ds.observations[1])
    m = get_method("cryogen2", mask=ds.mask, sigma=float(ds.sigma.mean()), base_channels=2, batch_size=2)
    assert m.fit(ds, 1, progress=False).step == 1


def test_a_bad_dataset_is_refused(files):
    with pytest.raises(TypeError, match="Dataset"):
        _method().fit([torch.zeros(BOX, BOX, BOX)] * 4, 1, progress=False)
    with pytest.raises(ValueError, match="half grid"):
        get_method("cryogen2", mask=missing_wedge_mask((16,) * 3), sigma=0.5, base_channels=2,
                   batch_size=2).fit(MRCDataset(files), 1, progress=False)


def _rank_main(rank, port, folder, files):
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_distributed("cpu")
    try:
        ds = CountingDataset(files)
        m = _method(potential=True).fit(ds, 3, progress=False, checkpoint=os.path.join(folder, "ddp.pt"), checkpoint_every=2)
        torch.save({"read": ds.read, "params": _params(m), "history": m.history}, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        cleanup()


def test_ddp_trains_from_a_distributed_sampler(files, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    method = "fork" if sys.platform == "linux" else "spawn"
    mp.start_processes(_rank_main, args=(port, str(tmp_path), files), nprocs=2, join=True, start_method=method)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    # Each rank holds a shard of 6 of the 12 files per epoch; a step takes 2 x 2 of them (one step per epoch,
    # the 2 left over are dropped), and the shards are redrawn every epoch.
    for epoch in range(3):
        shards = []
        for r in range(2):
            sampler = DistributedSampler(range(N), num_replicas=2, rank=r, seed=1, drop_last=True)
            sampler.set_epoch(epoch)
            shards.append(list(sampler))
        assert not set(shards[0]) & set(shards[1])
        for r, out in enumerate((r0, r1)):
            assert out["read"][4 * epoch : 4 * epoch + 4] == shards[r][:4]
    assert len(r0["read"]) == len(r1["read"]) == 4 * 3
    assert r0["history"] != r1["history"]  # different minibatches per rank
    for n, p in r0["params"].items():  # one model: the gradients were averaged
        assert torch.equal(p, r1["params"][n]), n
    assert torch.load(tmp_path / "ddp.pt", weights_only=True)["step"] == 3
