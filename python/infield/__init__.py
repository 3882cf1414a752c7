"""Infield from Python: fields as numpy arrays, operators, likelihoods and MGVI / geoVI on the C++ core.

    import numpy as np, infield as inf
    x = inf.regular_grid([90])
    A = inf.matrix_operator(x, x, np.eye(90))
    ham = inf.standard_hamiltonian(inf.gaussian_likelihood(d, noise_std=0.3), A)
    result = inf.optimize_kl(ham, global_iterations=3, sample_pairs=20, seed=5)
    mean, std = result.samples.statistics(A)

Fields are float64 numpy arrays of their space's shape; fields on a MultiDomain are dicts of
arrays keyed like the C++ MultiDomain. C++ errors arrive as ValueError (bad arguments, shapes,
keys, non-finite values), TypeError (wrong types, unsupported operations) or OSError (files).
See docs/python.md.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Optional, Sequence

from . import _core
from ._core import (  # noqa: F401  (the public API)
    CallbackError,
    CheckReport,
    Communicator,
    CorrelatedFieldMaker,
    Domain,
    LinearOperator,
    Likelihood,
    Operator,
    SampleList,
    Space,
    StandardHamiltonian,
    bernoulli_likelihood,
    check_jacobian,
    check_linear_operator,
    diagonal_operator,
    exp,
    field_adapter,
    gaussian_likelihood,
    harmonic_partner,
    hartley_transform,
    identity_operator,
    inverse_gamma_likelihood,
    k_lengths,
    log,
    make_linear_operator,
    make_operator,
    mask_operator,
    matrix_operator,
    multi_domain,
    normal,
    poisson_likelihood,
    power_distributor,
    power_space,
    product,
    read_image_dataset,
    regular_grid,
    relu,
    scaling_operator,
    sigmoid,
    softplus,
    space,
    sqrt,
    standard_hamiltonian,
    student_t_likelihood,
    tanh,
    unstructured,
    variable_covariance_gaussian_likelihood,
)

__all__ = [name for name in dir(_core) if not name.startswith("_")] + [
    "optimize_kl",
    "KLResult",
    "Mkde",
    "Autoencoder",
    "train_autoencoder",
    "plot",
]


@dataclasses.dataclass
class KLResult:
    """What optimize_kl returns."""

    samples: SampleList
    """The final samples; ``samples.mean`` is the final expansion point."""
    reports: list
    """One dict per global iteration (KL, gradient norm, CG and Newton counts, timings, ...)."""
    resumed_iterations: int
    """Global iterations restored from the checkpoint rather than run."""
    all_converged: bool
    """True if every sampling CG and every minimisation converged."""

    @property
    def mean(self):
        return self.samples.mean


def optimize_kl(
    hamiltonian: StandardHamiltonian,
    initial: Any = None,
    *,
    global_iterations: int = 5,
    sample_pairs: int = 4,
    seed: int = 42,
    threads: Optional[int] = None,
    checkpoint: Optional[os.PathLike] = None,
    resume: bool = False,
    callback: Optional[Callable[[dict, SampleList], None]] = None,
    method: str = "mgvi",
    geovi_steps: int = 20,
    geovi_delta_energy: float = 1e-8,
    sampling_cg_tolerance: float = 1e-8,
    sampling_cg_delta_energy: float = 0.0,
    sampling_cg_max: int = 500,
    newton_steps: int = 10,
    newton_delta_energy: float = 0.0,
    newton_convergence_level: int = 1,
    newton_gradient_tolerance: float = 1e-8,
    newton_cg_tolerance: float = 1e-6,
    newton_cg_max: int = 200,
    newton_cg_reduction: float = 0.0,
    point_estimates: Sequence[str] = (),
    run_id: str = "",
    progress: bool = False,
    dense_entropy_limit: int = 2048,
    communicator: Optional["Communicator"] = None,
) -> KLResult:
    """MGVI (or geoVI with ``method="geovi"``) on a Hamiltonian: the C++ optimize_kl.

    ``initial`` is the start (default zeros); ``sample_pairs`` mirrored pairs per global
    iteration; the Newton-CG minimiser of the sampled KL takes up to ``newton_steps`` steps and
    stops when a step changes the KL by less than ``newton_delta_energy`` (counted
    ``newton_convergence_level`` times, NIFTy's AbsDeltaEnergyController) or the gradient norm is
    below ``newton_gradient_tolerance``; ``newton_cg_reduction`` > 0 makes its CG inexact as
    NIFTy's NewtonCG. The sampling CG stops at ``sampling_cg_tolerance`` relative residual or an
    energy change below ``sampling_cg_delta_energy``. ``threads``: worker threads (default: all
    cores); results do not depend on it beyond rounding. ``checkpoint`` is written atomically after
    every global iteration; ``resume=True`` continues from it. ``callback(report, samples)`` runs
    after each global iteration; an exception in it stops the run and propagates. The GIL is
    released while the C++ core works; Ctrl-C stops the run between global iterations (raising
    KeyboardInterrupt) with the last checkpoint intact. ``communicator=Communicator.world()``
    deals the sample pairs to the ranks of ``mpirun -np K python3 script.py`` (every rank returns
    the same result, bit for bit the one-process result; only the root writes the checkpoint).
    """
    out = _core._optimize_kl(
        hamiltonian,
        initial,
        int(global_iterations),
        int(sample_pairs),
        int(seed),
        0 if threads is None else int(threads),
        "" if checkpoint is None else os.fspath(checkpoint),
        bool(resume),
        callback,
        method,
        int(geovi_steps),
        float(geovi_delta_energy),
        float(sampling_cg_tolerance),
        float(sampling_cg_delta_energy),
        int(sampling_cg_max),
        int(newton_steps),
        float(newton_delta_energy),
        int(newton_convergence_level),
        float(newton_gradient_tolerance),
        float(newton_cg_tolerance),
        int(newton_cg_max),
        float(newton_cg_reduction),
        list(point_estimates),
        run_id,
        bool(progress),
        int(dense_entropy_limit),
        communicator,
    )
    return KLResult(**out)


class Mkde:
    """Matérn kernel density estimator (docs/mkde.md), scikit-learn style.

        kde = Mkde(cells=64).fit(points)      # points: N x D
        kde.logpdf(x); kde.sample(100, seed=1); kde.save("dir"); Mkde.load("dir")
    """

    def __init__(self, cells=64, *, padding=None, margin=0.1, log_density_std=2.0,
                 global_iterations=5, sample_pairs=5, newton_steps=10, seed=42, threads=None,
                 progress=False, communicator=None):
        self.cells = cells
        self.padding = padding
        self.margin = margin
        self.log_density_std = log_density_std
        self.global_iterations = global_iterations
        self.sample_pairs = sample_pairs
        self.newton_steps = newton_steps
        self.seed = seed
        self.threads = threads
        self.progress = progress
        self.communicator = communicator  # infield.Communicator: MGVI samples over MPI ranks
        self._fitted = None

    def fit(self, points) -> "Mkde":
        import numpy as np

        points = np.asarray(points, dtype=float)
        if points.ndim != 2:
            raise ValueError(f"Mkde.fit: points must be N x D, got shape {points.shape}")
        cells = [self.cells] if np.isscalar(self.cells) else list(self.cells)
        self._fitted = _core._Mkde.fit(
            points, cells, self.padding, self.margin, self.log_density_std,
            self.global_iterations, self.sample_pairs, self.newton_steps, self.seed,
            0 if self.threads is None else self.threads, self.progress, self.communicator)
        return self

    def _model(self):
        if self._fitted is None:
            raise ValueError("Mkde: call fit() (or Mkde.load) first")
        return self._fitted

    def logpdf(self, points):
        """The posterior-mean log density at points (N x D)."""
        import numpy as np

        return self._model().log_density(np.atleast_2d(np.asarray(points, dtype=float)))

    def sample(self, n: int, seed: int = 0):
        """n points (n x D) drawn from the fitted density."""
        return self._model().sample(int(n), int(seed))

    def save(self, directory) -> None:
        self._model().save(os.fspath(directory))

    @classmethod
    def load(cls, directory) -> "Mkde":
        kde = cls()
        kde._fitted = _core._Mkde.load(os.fspath(directory))
        kde.cells = list(kde._fitted.cells)
        return kde

    @property
    def dimensions(self) -> int:
        return self._model().dimensions

    @property
    def bounds(self):
        return self._model().bounds


Autoencoder = _core._Autoencoder


def _images(source, split):
    if isinstance(source, (str, os.PathLike)):
        return read_image_dataset(os.fspath(source), split)[0]
    return source


def train_autoencoder(train, test=None, *, model="fishernet", latent=5, hidden=(448, 448, 448),
                      epochs=1, batch=64, learning_rate=1e-4, noise_learning_rate=0.0, seed=0,
                      threads=1, on_epoch=None, communicator=None) -> Autoencoder:
    """Trains FisherNet ("fishernet"), the VAE ("vae") or the CVAE ("cvae") with the paper's
    defaults (Appendix A). ``train``/``test``: N x pixels arrays in [0, 1], or an IDX folder (its
    'train' and 't10k' splits). ``on_epoch(record)`` gets each epoch's metrics as a dict. Returns
    the trained model: ``.history`` (list of dicts), ``.encode(images)`` -> (means, covariances),
    ``.decode(z)``, ``.test_mse(images)``, ``.noise_std``, ``.save(path)``.
    ``communicator=Communicator.world()`` shares every batch over the MPI ranks (gradients summed
    shard by shard, Adam sharded; the one-process trajectory to float rounding); every rank
    returns the model."""
    train_images = _images(train, "train")
    if test is None:
        test_images = _images(train, "t10k") if isinstance(train, (str, os.PathLike)) else train_images
    else:
        test_images = _images(test, "t10k")
    return _core._train_autoencoder(model, int(latent), train_images, test_images, list(hidden),
                                    int(epochs), int(batch), float(learning_rate),
                                    float(noise_learning_rate), int(seed), int(threads), on_epoch,
                                    communicator)


def __getattr__(name):
    # infield.plot needs matplotlib: imported on first use only.
    if name == "plot":
        import importlib

        return importlib.import_module(".plot", __name__)
    raise AttributeError(f"module 'infield' has no attribute {name!r}")
