"""DistributedDataParallel training on the CPU: two gloo processes against one process that averages."""

import os
import shutil
import socket
import sys
import threading

import pytest
import torch
import torch.multiprocessing as mp

from cryolearn.training.distributed import barrier, cleanup, get_world_size, init_distributed, is_main_process, unwrap, wrap
from cryolearn.methods import get_method
from cryolearn.physics import missing_wedge_mask, simulate_observation

N2D, N_OBS, STEPS = 16, 12, 3
CASES = {
    "cryogen2": dict(name="cryogen2", potential=True),
    "cryogen2-masked": dict(name="cryogen2", masked_rotation=2.0),
    "cryogen1": dict(name="cryogen1", e_steps=2),
    "cryogen1-gp": dict(name="cryogen1", loss="wgan-gp", e_steps=2),
    "cryowgen1": dict(name="cryowgen1", use_witness=True, n_train_samples=4),
    "cryowgen2": dict(name="cryowgen2", use_witness=True, n_chains=2, n_train_steps=2),
}


def _images():
    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.avg_pool2d(torch.randn(N_OBS, 1, N2D, N2D, generator=g), 3, 1, 1)[:, 0]
    mask = missing_wedge_mask((N2D, N2D), (-45, 45))
    y, _ = simulate_observation(x / x.std(), mask, sigma=0.3, generator=g)
    return y, mask


def _make(case):
    kw = dict(CASES[case])
    y, mask = _images()
    return get_method(kw.pop("name"), mask=mask, sigma=0.3, base_channels=4, batch_size=4, seed=3, **kw), y


def _params(method):
    return {f"{k}.{n}": p.detach().clone() for k, m in method._modules().items() for n, p in m.named_parameters()}


def _rank_main(rank, port, folder):
    """One torchrun-like process: environment, init_distributed, fit every case with a checkpoint, then resume one."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    info = init_distributed("cpu")
    try:
        out = {"info": (info.rank, info.world_size, info.local_rank, str(info.device), is_main_process())}
        for case in CASES:
            method, y = _make(case)
            saves = []
            save = method.save
            method.save = lambda path, save=save: (saves.append(rank), save(path))
            method.fit(y, STEPS, progress=False, checkpoint=os.path.join(folder, f"{case}.pt"), checkpoint_every=2)
            assert all(unwrap(m) is m for m in method._modules().values())  # unwrapped after fit
            out[case] = {"params": _params(method), "saves": saves, "history": method.history}
        resume = os.path.join(folder, "resume.pt")
        if rank == 0:
            shutil.copy(os.path.join(folder, "cryogen2.pt"), resume)
        barrier()
        resumed, y = _make("cryogen2")  # a fresh method picks up the checkpoint of step 3 and trains step 4
        resumed.fit(y, STEPS + 1, progress=False, checkpoint=resume)
        out["resumed"] = {"params": _params(resumed), "history": resumed.history}
        early, y = _make("cryogen2")
        early.generator = torch.Generator().manual_seed(early.seed + 1)  # as an earlier reconstruct leaves it: one for all ranks
        early.fit(y, 1, progress=False)
        out["early_generator"] = early.history
        torch.save(out, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        cleanup()


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    # Built before forking, so that the processes inherit the modules imported lazily (torch.optim loads torch._dynamo).
    inits = {case: _params(_make(case)[0]) for case in CASES}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # fork (where available) spares each process from importing torch again: seconds instead of tens of seconds
    method = "fork" if sys.platform == "linux" else "spawn"
    mp.start_processes(_rank_main, args=(port, str(folder)), nprocs=2, join=True, start_method=method)
    return folder, inits, [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _averager(optimizers, gate):
    """Optimiser pre-step hook: wait for both threads' gradients, replace them by their average, go on together."""
    params = [[p for g in o.param_groups for p in g["params"]] for o in optimizers]

    def hook(optimizer, args, kwargs):
        if gate.wait() == 0:  # both gradients are ready; one thread averages them for both
            for a, b in zip(*params):
                if a.grad is not None:
                    a.grad = b.grad = (a.grad + b.grad) / 2
        gate.wait()

    return hook


def _averaging_reference(case):
    """Two "ranks" as two threads of this process whose optimisers step on the average of both gradients."""
    pair = [_make(case) for _ in range(2)]
    gate = threading.Barrier(2, timeout=120)
    for r, (m, _) in enumerate(pair):
        m.generator = torch.Generator().manual_seed(m.seed + 1 + r)  # the rank's generator (Method.fit's rule)
        for key, opt in m.optimizers.items():
            opt.register_step_pre_hook(_averager([other.optimizers[key] for other, _ in pair], gate))
    errors = []

    def train(m, y):
        try:
            m.fit(y, STEPS, progress=False)
        except BaseException as err:  # noqa: BLE001 - re-raised in the main thread
            errors.append(err)
            gate.abort()

    threads = [threading.Thread(target=train, args=p) for p in pair]
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        torch.set_num_threads(n_threads)
    if errors:
        raise errors[0]
    return [_params(m) for m, _ in pair], [m.history for m, _ in pair]


def test_single_process_is_a_no_op(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.local_rank, info.device) == (0, 1, 0, torch.device("cpu"))
    assert get_world_size() == 1 and is_main_process()
    net = torch.nn.Linear(2, 2)
    assert wrap(net) is net and unwrap(net) is net
    cleanup()  # nothing to leave


def test_rank_information_and_checkpoints(ranks):
    folder, _, outs = ranks
    assert [o["info"] for o in outs] == [(0, 2, 0, "cpu", True), (1, 2, 1, "cpu", False)]
    for case in CASES:
        assert outs[0][case]["saves"] == [0, 0] and outs[1][case]["saves"] == []  # steps 2 and 3, rank 0 only
        state = torch.load(folder / f"{case}.pt", weights_only=False)
        assert state["step"] == STEPS
        for k, sd in state["modules"].items():  # the single-process format: no "module." prefix
            torch.testing.assert_close({f"{k}.{n}": v for n, v in sd.items()}, {n: v for n, v in outs[0][case]["params"].items() if n.startswith(k + ".")})
    assert not [p for p in os.listdir(folder) if p.endswith(".tmp")]


def test_resume_continues_with_different_minibatches_per_rank(ranks):
    folder, _, outs = ranks
    r0, r1 = outs[0]["resumed"], outs[1]["resumed"]
    assert [h["step"] for h in r0["history"]] == list(range(1, STEPS + 2))
    assert r0["history"][:STEPS] == r1["history"][:STEPS] == outs[0]["cryogen2"]["history"]  # rank 0's, from the checkpoint
    assert r0["history"][-1] != r1["history"][-1]  # rank 1 reseeded: its own minibatch at step 4
    for n in r0["params"]:
        assert torch.equal(r0["params"][n], r1["params"][n])
    assert torch.load(folder / "resume.pt", weights_only=False)["step"] == STEPS + 1


def test_a_generator_made_before_fit_is_not_shared_by_the_ranks(ranks):
    _, _, outs = ranks
    assert outs[0]["early_generator"] != outs[1]["early_generator"]  # each rank drew its own minibatch


@pytest.mark.parametrize("case", list(CASES))
def test_ddp_equals_averaged_gradients(ranks, case):
    _, inits, outs = ranks
    p0, p1, init = outs[0][case]["params"], outs[1][case]["params"], inits[case]
    for n in p0:
        assert torch.equal(p0[n], p1[n]), f"{n} differs between ranks"
    moved = [n for n in p0 if not torch.equal(p0[n], init[n])]
    assert moved, "training did not change the parameters"
    ref, ref_history = _averaging_reference(case)
    assert ref_history[0] != ref_history[1]  # the two ranks saw different minibatches
    for r in range(2):  # rank r drew the minibatches of generator seed + 1 + r and logged its own losses
        torch.testing.assert_close(outs[r][case]["history"], ref_history[r], rtol=1e-5, atol=1e-8)
    for n in p0:  # bitwise equal here (halving is exact); the tolerance allows other reduction orders
        torch.testing.assert_close(p0[n], ref[0][n], rtol=1e-5, atol=1e-6, msg=f"{case}: {n}")
