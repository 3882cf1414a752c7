"""The Python package over MPI ranks. ctest runs it as `mpiexec -n K python3 mpi_ranks.py DIR`
(K = 2, 3; not collected by pytest): every rank runs each check, a failed assertion ends that rank
with a non-zero status, and mpiexec with it. DIR is a scratch folder all ranks see."""

import os
import sys
import threading

import numpy as np

import infield as inf



def _raises(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 (the message is what is checked)
        return f"{type(e).__name__}: {e}"
    return "no exception"


comm = inf.Communicator.world()
scratch = sys.argv[1]
expected = int(os.environ.get("OMPI_COMM_WORLD_SIZE", os.environ.get("PMI_SIZE", "1")))
assert comm.size == expected, f"Communicator.world() has {comm.size} ranks, mpiexec started {expected}"
assert 0 <= comm.rank < comm.size and comm.is_root == (comm.rank == 0)
assert comm.sum(comm.rank + 1.0) == comm.size * (comm.size + 1) / 2
begin, end = comm.share(7)
assert comm.sum(float(end - begin)) == 7.0

# MPI is initialised funneled: another thread gets a clear error, not undefined behaviour.
errors = []
worker = threading.Thread(target=lambda: errors.append(_raises(lambda: comm.sum(1.0))))
worker.start()
worker.join()
assert errors == ["ValueError: Communicator.sum: MPI may only be used from the thread that called "
                  "Communicator.world() (MPI is initialised funneled)"], errors

# MGVI on the API contract's linear-Gaussian problem: the posterior mean is exact, and the run over the ranks is the one-process run bit for
# bit (sums over samples follow one fixed tree whoever computes them).
rng = np.random.default_rng(7)
R_np = rng.standard_normal((60, 90)) / 9
A_np = np.eye(90) + 0.1 * rng.standard_normal((90, 90))
d_np = R_np @ A_np @ rng.standard_normal(90) + 0.3 * rng.standard_normal(60)
x, y = inf.regular_grid([90]), inf.unstructured(60)
R, A = inf.matrix_operator(x, y, R_np), inf.matrix_operator(x, x, A_np)
ham = inf.standard_hamiltonian(inf.gaussian_likelihood(d_np, noise_std=0.3), R @ A)


def fit(communicator, **options):
    return inf.optimize_kl(ham, global_iterations=2, sample_pairs=5, seed=5,
                           sampling_cg_tolerance=1e-11, newton_cg_tolerance=1e-11,
                           communicator=communicator, threads=1, **options)


over_ranks, alone = fit(comm), fit(None)
mean, std = over_ranks.samples.statistics(A)
mean_alone, std_alone = alone.samples.statistics(A)
assert np.array_equal(mean, mean_alone) and np.array_equal(std, std_alone), \
    f"rank {comm.rank}: MGVI over {comm.size} ranks differs from one process"
RA = R_np @ A_np
exact = np.linalg.solve(RA.T @ RA / 0.09 + np.eye(90), RA.T @ d_np / 0.09)
xi_mean = over_ranks.samples.mean
assert np.abs(xi_mean - exact).max() < 1e-6 * np.abs(exact).max()
geo = fit(comm, method="geovi", geovi_steps=5)
assert np.array_equal(geo.samples.statistics(A)[0], fit(None, method="geovi",
                                                          geovi_steps=5).samples.statistics(A)[0])

# A checkpoint in a folder all ranks see: the root writes it, every rank resumes from it, and
# the resumed run ends where the uninterrupted one does.
checkpoint = os.path.join(scratch, "kl.ckpt")
if comm.is_root and os.path.exists(checkpoint):
    os.remove(checkpoint)
comm.barrier()
inf.optimize_kl(ham, global_iterations=1, sample_pairs=5, seed=5, checkpoint=checkpoint,
                communicator=comm, threads=1)
resumed = inf.optimize_kl(ham, global_iterations=2, sample_pairs=5, seed=5, checkpoint=checkpoint,
                          resume=True, communicator=comm, threads=1)
straight = inf.optimize_kl(ham, global_iterations=2, sample_pairs=5, seed=5, communicator=comm,
                           threads=1)
assert np.array_equal(resumed.samples.mean, straight.samples.mean)

# MKDE: its MGVI over the ranks gives the one-process density bit for bit.
points = np.random.default_rng(3).standard_normal((200, 1))
grid = np.linspace(-3, 3, 41)[:, None]
kde = dict(cells=32, global_iterations=2, sample_pairs=3, seed=1, threads=1)
assert np.array_equal(inf.Mkde(**kde, communicator=comm).fit(points).logpdf(grid),
                      inf.Mkde(**kde).fit(points).logpdf(grid))

# FisherNet training: every batch shared over the ranks, the one-process trajectory to float
# rounding.
images = np.random.default_rng(4).random((120, 16))
train = dict(model="fishernet", latent=2, hidden=(16, 16), epochs=2, batch=16,
             learning_rate=1e-3, seed=3, threads=1)
shared = inf.train_autoencoder(images[:96], images[96:], **train, communicator=comm)
single = inf.train_autoencoder(images[:96], images[96:], **train)
for a, b in zip(shared.history, single.history):
    for key in ("train_loss", "test_mse", "noise_std"):
        assert abs(a[key] - b[key]) <= 1e-4 * abs(b[key]), (key, a[key], b[key])

# A callback raising on one rank only stops every rank after the same iteration (none is left
# waiting in the next iteration's sums): that rank gets its own exception, the others a
# RuntimeError that says why.
def fail_on_last_rank(report, samples):
    if comm.rank == comm.size - 1:
        raise ValueError("the last rank's callback")


try:
    inf.optimize_kl(ham, global_iterations=3, sample_pairs=5, seed=5, communicator=comm, threads=1,
                    callback=fail_on_last_rank)
    raise AssertionError("optimize_kl did not stop")
except ValueError as e:
    assert comm.rank == comm.size - 1 and "the last rank's callback" in str(e)
except RuntimeError as e:
    assert comm.rank != comm.size - 1 and "stopped with another rank" in str(e), str(e)


def fail_on_root(record):
    if comm.is_root:
        raise KeyError("the root's on_epoch")


try:
    inf.train_autoencoder(images[:96], images[96:], **train, communicator=comm,
                          on_epoch=fail_on_root)
    raise AssertionError("train_autoencoder did not stop")
except KeyError as e:
    assert comm.is_root and "the root's on_epoch" in str(e)
except RuntimeError as e:
    assert not comm.is_root and "stopped with another rank" in str(e), str(e)
comm.barrier()  # and every rank goes on

if comm.is_root:
    print(f"python over {comm.size} ranks: all checks passed")
