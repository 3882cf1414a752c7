"""The Python examples: getting_started_3 on cf2d's data gives the command line's posterior mean
for the same seed, and custom_operator runs (its checks are assertions inside it)."""

import json
import os
import subprocess
import sys

import numpy as np


def run(args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=600, **kw)


def test_getting_started_3_equals_infield_reconstruct(source_dir, cli, tmp_path):
    data = source_dir / "tests" / "data" / "cf2d"
    run([cli, "reconstruct", "--data", str(data / "data.npy"), "--mask", str(data / "mask.npy"),
         "--noise-std", "0.05", "--response", "sigmoid", "--shape", "128,128", "--samples", "8",
         "--iterations", "5", "--seed", "3", "--threads", "2", "--out", str(tmp_path / "cli")])
    run([sys.executable, str(source_dir / "examples" / "python" / "getting_started_3.py"),
         "--data", str(data), "--seed", "3", "--threads", "2", "--out", str(tmp_path / "py")],
        env=dict(os.environ))
    cli_mean = np.load(tmp_path / "cli" / "mean.npy")
    py_mean = np.load(tmp_path / "py" / "mean.npy")
    np.testing.assert_allclose(py_mean, cli_mean.reshape(py_mean.shape), rtol=0, atol=1e-10)
    for figure in ("posterior.png", "power_spectrum.png"):
        assert (tmp_path / "py" / figure).stat().st_size > 10000
    summary = json.loads((tmp_path / "py" / "summary.json").read_text())
    assert summary["rms_error"] < 0.2


def test_custom_operator_example_runs(source_dir, tmp_path):
    out = run([sys.executable, str(source_dir / "examples" / "python" / "custom_operator.py"),
               "--out", str(tmp_path)], env=dict(os.environ)).stdout
    assert "check_jacobian(BlurSaturate): passed" in out
    assert "WrongVjp): fails" in out
    assert (tmp_path / "posterior.png").exists()


def test_getting_started_3_on_mock_data(source_dir, tmp_path):
    run([sys.executable, str(source_dir / "examples" / "python" / "getting_started_3.py"),
         "--seed", "1", "--out", str(tmp_path)], env=dict(os.environ))
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["rms_error"] < 0.2
