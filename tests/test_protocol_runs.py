"""evaluate.py's protocols end to end, and scoring .npz files written elsewhere."""

import json

import numpy as np
import pytest
import torch

from conftest import run_cli

FAST = ("sampler=ddim", "sampler.steps=2", "progress=false")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A reference batch of the digits test split, written by the module users run."""
    out = tmp_path_factory.mktemp("ref") / "digits_test.npz"
    proc = run_cli("-m", "ddpm.evaluation.reference", "dataset=digits", "split=test",
                   f"out={out}", env={"PYTHONWARNINGS": "default"})  # fmt: skip
    assert "RuntimeWarning" not in proc.stderr  # runpy's: the module imported before it ran
    return out


def _score(samples, reference, *extra):
    proc = run_cli(
        "-m", "ddpm.evaluation.score", str(samples), "--reference", str(reference),
        "--metrics", "fid", "precision", "recall", "--out", str(samples.with_suffix(".json")), *extra,
    )  # fmt: skip
    return json.loads(samples.with_suffix(".json").read_text()), proc.stdout


@pytest.mark.slow
def test_score_gives_evaluate_fid_on_the_same_images(digits_ckpt, reference, tmp_path):
    run_cli(
        "evaluate.py",
        f"ckpt={digits_ckpt}",
        "num_samples=200",
        *FAST,
        f"hydra.run.dir={tmp_path / 'ev'}",
    )
    run_cli(
        "sample.py",
        f"ckpt={digits_ckpt}",
        "num_samples=200",
        *FAST,
        f"hydra.run.dir={tmp_path / 'sm'}",
    )
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    with np.load(tmp_path / "sm" / "samples.npz") as f:  # the same images, in ADM's layout too
        np.savez(tmp_path / "adm.npz", arr_0=f["images"])
    for samples in (tmp_path / "sm" / "samples.npz", tmp_path / "adm.npz"):
        scored, stdout = _score(samples, reference)
        assert scored["fid"] == pytest.approx(evaluated["fid"], rel=1e-9), samples
        assert scored["precision"] == evaluated["precision"] and "fid=" in stdout
        assert scored["feature_extractor"] == evaluated["feature_extractor"] == "classifier-digits"


@pytest.mark.slow
def test_score_reads_a_diffusers_pipeline_output(reference, tmp_path):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    unet = diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1, norm_num_groups=4,
    )  # fmt: skip
    pipe = diffusers.DDPMPipeline(unet, diffusers.DDPMScheduler(num_train_timesteps=20))
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        batch_size=64,
        num_inference_steps=2,
        output_type="np",
        generator=torch.Generator().manual_seed(0),
    )
    assert out.images.shape == (64, 8, 8, 1) and out.images.dtype == np.float32
    np.savez(tmp_path / "diffusers.npz", out.images)  # arr_0, float in [0, 1]
    np.savez(tmp_path / "uint8.npz", np.round(out.images * 255).astype(np.uint8))
    a, _ = _score(tmp_path / "diffusers.npz", reference)
    b, _ = _score(tmp_path / "uint8.npz", reference)
    assert a["num_samples"] == 64 and np.isfinite(a["fid"]) and a["fid"] == b["fid"]
    assert a["fid"] > 50, a  # an untrained UNet's images are no digits


@pytest.mark.slow
def test_protocol_edm_reports_best_mean_and_spread_of_three_seed_sets(digits_ckpt, tmp_path):
    run_cli(
        "evaluate.py", f"ckpt={digits_ckpt}", "protocol=edm", *FAST, f"hydra.run.dir={tmp_path}"
    )
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["protocol"] == "edm" and m["seed_sets"] == 3 and m["num_samples_requested"] == 50000
    assert m["num_samples"] == 1500 and "digits train split (1500 images)" in m["reference"]
    values = m["spread"]["fid"]["values"]
    assert len(values) == 3 and len(set(values)) == 3  # three different seed sets
    assert m["fid"] == min(values) and m["spread"]["fid"]["mean"] == pytest.approx(np.mean(values))


@pytest.mark.slow
def test_protocol_adm_writes_its_suite_the_same_on_one_and_two_devices(
    digits_ckpt, reference, tmp_path
):
    runs = []
    for devices in (1, 2):
        run_cli(
            "evaluate.py", f"ckpt={digits_ckpt}", "protocol=adm", "num_samples=300",
            f"protocol.reference={reference}", "trainer.accelerator=cpu", f"trainer.devices={devices}",
            *FAST, f"hydra.run.dir={tmp_path / str(devices)}",
        )  # fmt: skip
        runs.append(json.loads((tmp_path / str(devices) / "metrics.json").read_text()))
    for key in ("fid", "sfid", "is", "precision", "recall"):
        assert isinstance(runs[0][key], float), key
        # the same samples up to float32 batching in the network (a pixel may round differently)
        assert runs[0][key] == pytest.approx(runs[1][key], rel=1e-6, abs=1e-9), key
    m = runs[0]
    assert m["protocol"] == "adm" and 1 <= m["is"] <= 10 and str(reference) in m["reference"]


def test_missing_weights_references_and_bad_values_get_one_error_line(digits_ckpt, tmp_path):
    cases = [
        ("evaluate.py", f"ckpt={digits_ckpt}", "protocol=edm2"),
        ("evaluate.py", f"ckpt={digits_ckpt}", "protocol=adm", f"protocol.reference={tmp_path}/no.npz"),
        ("evaluate.py", f"ckpt={digits_ckpt}", "protocol.metrics=[fid,isc]"),
        ("-m", "ddpm.evaluation.score", str(tmp_path / "no.npz"), "--reference", str(tmp_path / "r.npz")),
        ("-m", "ddpm.evaluation.reference", "dataset=digits", "split=val", "out=x.npz"),
        ("-m", "ddpm.evaluation.reference", "dataset=digitz", "out=x.npz"),
    ]  # fmt: skip
    expected = [
        "fid.dinov2_weights=null is not a file: download", "does not exist; write one with",
        "isc is not a metric", "no.npz does not exist", "split=val is not valid",
        "dataset=digitz is not an option; choose from",
    ]  # fmt: skip
    for args, words in zip(cases, expected, strict=True):
        proc = run_cli(*args, check=False)
        err = proc.stderr.strip().splitlines()
        assert proc.returncode != 0 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert err[-1].startswith("error: ") and words in err[-1], (args, err)
