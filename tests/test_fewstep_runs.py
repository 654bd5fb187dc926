"""The few-step models as runs: ECT from an EDM checkpoint, MeanFlow from scratch and progressive
distillation, each trained, resumed after a stop to the same weights as an uninterrupted run,
sampled by its sampler through sample.py's and evaluate.py's library calls, and refused in one
line when started from the wrong checkpoint."""

import numpy as np
import pytest
import torch

from conftest import compose, run_cli, train_in_process
from ddpm.checks import ConfigError
from ddpm.evaluation import evaluate, sample

pytestmark = pytest.mark.slow

ECT = ("path=edm", "model=consistency", "sampler=consistency", "path.P_mean=-1.1", "path.P_std=2")
MEANFLOW = ("path=flow", "model=meanflow", "sampler=meanflow")
PD = ("path=edm", "model=progressive_distill", "sampler=ddim", "sampler.spacing=trailing",
      "sampler.steps=2", "model.steps=8", "model.rounds=2", "model.round_steps=4")  # fmt: skip


@pytest.fixture(scope="module")
def edm_ckpt(tmp_path_factory):
    run = tmp_path_factory.mktemp("toy_edm")
    train_in_process(run, "path=edm", "callbacks.checkpoint.every_n_train_steps=200", steps=200)
    return run / "checkpoints" / "last.ckpt"


def _weights(run, name="last.ckpt"):
    return torch.load(run / "checkpoints" / name, weights_only=True)["state_dict"]


def _resumes_exactly(tmp_path, *overrides):
    """Eight steps straight; then a run resumed from the straight run's step-4 checkpoint (what
    a kill after step 4 leaves behind) to step eight: the same weights, EMA and (for
    distillation) teacher, to the bit."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ("callbacks.checkpoint.every_n_train_steps=4", "trainer.val_check_interval=4")
    train_in_process(straight, *overrides, *common, steps=8)
    resume = f"ckpt_path={straight / 'checkpoints' / 'step_0000004.ckpt'}"
    train_in_process(resumed, *overrides, *common, resume, steps=8)
    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    return a


def test_ect_tunes_an_edm_model_resumes_exactly_and_samples_in_one_call(edm_ckpt, tmp_path):
    # logging every other step: the diagnostics of a run without the adversarial term log too
    weights = _resumes_exactly(
        tmp_path, *ECT, f"model.init={edm_ckpt}", "trainer.log_every_n_steps=2"
    )
    start = torch.load(edm_ckpt, weights_only=True)["state_dict"]
    assert not torch.equal(weights["net.out.2.weight"], start["ema.out.2.weight"])  # it trained
    ckpt = tmp_path / "straight" / "checkpoints" / "last.ckpt"
    common = [f"ckpt={ckpt}", "progress=false", "sampler=consistency"]
    sample(compose("sample", *common, "num_samples=8", run_dir=tmp_path / "s"))
    x = np.load(tmp_path / "s" / "samples.npz")["samples"]
    assert x.shape == (8, 2) and np.isfinite(x).all()
    m = evaluate(compose("evaluate", *common, "num_samples=16", "sampler.steps=2",
                         "sampler.levels=[0.8]", run_dir=tmp_path / "e"))  # fmt: skip
    assert m["nfe"] == 2
    with pytest.raises(ConfigError, match="is a consistency model, a map from noise to data"):
        evaluate(compose("evaluate", *common, "num_samples=16", "bpd=ode", run_dir=tmp_path / "b"))
    with pytest.raises(ConfigError, match="is a consistency model: sample it with sampler=consi"):
        sample(compose("sample", f"ckpt={ckpt}", "sampler=dpm_solver", run_dir=tmp_path / "x"))
    from ddpm.export import export_diffusers

    with pytest.raises(ConfigError, match="is a consistency model, which no diffusers scheduler"):
        export_diffusers(ckpt, tmp_path / "export")
    with pytest.raises(ConfigError, match="is a consistency model checkpoint"):  # not a teacher
        train_in_process(tmp_path / "pd", *PD, f"model.teacher={ckpt}", steps=8)


FEATURES = ("model.adversarial_steps=2", "model/discriminator=features",
            "model.discriminator.taps=[layers.0,layers.1]")  # fmt: skip
DMD = ("model.adversarial_steps=2", "model.dmd=0.5")


@pytest.mark.parametrize(
    "judged",
    [(), ("model.adversarial_steps=2",), FEATURES, DMD],
    ids=["pairs", "sampler", "features", "dmd"],
)
def test_ect_continues_a_consistency_model_with_the_adversarial_term_and_resumes_exactly(
    edm_ckpt, tmp_path, judged
):
    """A consistency checkpoint tuned further with ``model.adversarial`` (judging the pairs' or
    the sampler's outputs; with the feature discriminator, whose frozen network is
    ``model.teacher``'s; with DMD's term, whose denoisers start from it): the discriminator (and
    DMD's denoisers) are checkpointed and resumed with the model, both train (the frozen
    networks do not), and the samplers still read the EMA."""
    first = tmp_path / "first"
    train_in_process(first, *ECT, f"model.init={edm_ckpt}", steps=4)
    ckpt = first / "checkpoints" / "last.ckpt"
    adv = ("model.adversarial=0.1", "model.stages=1", "model.q=256", *judged)
    teacher = (f"model.teacher={edm_ckpt}",) if judged in (FEATURES, DMD) else ()
    weights = _resumes_exactly(tmp_path, *ECT, f"model.init={ckpt}", *adv, *teacher)
    start = torch.load(ckpt, weights_only=True)["state_dict"]
    assert not torch.equal(weights["net.out.2.weight"], start["ema.out.2.weight"])
    disc = {k: v for k, v in weights.items() if k.startswith("discriminator.")}
    assert disc and not any(k.startswith("discriminator.") for k in start)
    halfway = _weights(tmp_path / "straight", "step_0000004.ckpt")  # it trains
    out = next(k for k in disc if ".out" in k and k.endswith("weight") and "backbone" not in k)
    assert not torch.equal(disc[out], halfway[out])
    stored = torch.load(edm_ckpt, weights_only=True)["state_dict"]
    if judged == FEATURES:  # the frozen network: the teacher's EMA weights, unchanged
        backbone = {k.removeprefix("discriminator.backbone."): v for k, v in disc.items()
                    if k.startswith("discriminator.backbone.")}  # fmt: skip
        assert backbone and all(torch.equal(v, stored[f"ema.{k}"]) for k, v in backbone.items())
    if judged == DMD:  # the real denoiser: the teacher's, unchanged; the fake one trains
        real = {k.removeprefix("score_pair.real."): v for k, v in weights.items()
                if k.startswith("score_pair.real.")}  # fmt: skip
        assert real and all(torch.equal(v, stored[f"ema.{k}"]) for k, v in real.items())
        fake = "score_pair.fake.out.2.weight"
        assert not torch.equal(weights[fake], halfway[fake])
    m = evaluate(compose("evaluate", f"ckpt={tmp_path / 'straight' / 'checkpoints' / 'last.ckpt'}",
                         "progress=false", "num_samples=16", "sampler=consistency",
                         run_dir=tmp_path / "e"))  # fmt: skip
    assert m["nfe"] == 1 and np.isfinite(m["fid"])


def test_ect_refuses_a_checkpoint_of_another_path_a_vae_or_another_network(edm_ckpt, tmp_path):
    flow = tmp_path / "flow"
    train_in_process(flow, "path=flow", steps=2)
    vae = tmp_path / "vae"
    train_in_process(vae, "experiment=toy2d_vae", "network.hidden=64", steps=2)
    cases = {
        flow / "checkpoints" / "last.ckpt": "is a model of path=flow; this run is on path=edm",
        vae / "checkpoints" / "last.ckpt": "is a VAE .* checkpoint",
        tmp_path / "none.ckpt": "does not exist",
    }
    for where, message in cases.items():
        with pytest.raises((ConfigError, ValueError), match=message):
            train_in_process(tmp_path / "run", *ECT, f"model.init={where}", steps=2)
    with pytest.raises(ConfigError, match=r"differs from this run in its network"):
        train_in_process(tmp_path / "run", *ECT, f"model.init={edm_ckpt}", "network.hidden=32",
                         steps=2)  # fmt: skip


def test_meanflow_trains_resumes_exactly_and_samples_with_either_sampler(tmp_path):
    _resumes_exactly(tmp_path, *MEANFLOW)
    ckpt = tmp_path / "straight" / "checkpoints" / "last.ckpt"
    cases = {"one": ["sampler=meanflow"], "two": ["sampler=meanflow", "sampler.steps=2"],
             "ode": ["sampler=euler", "sampler.steps=3"]}  # fmt: skip
    for name, extra in cases.items():
        m = evaluate(compose("evaluate", f"ckpt={ckpt}", "progress=false", "num_samples=16",
                             *extra, run_dir=tmp_path / name))  # fmt: skip
        assert m["nfe"] == {"one": 1, "two": 2, "ode": 3}[name] and np.isfinite(m["fid"])


def test_meanflow_sampler_on_a_diffusion_checkpoint_is_one_error_line(edm_ckpt, tmp_path):
    proc = run_cli("sample.py", f"ckpt={edm_ckpt}", "sampler=meanflow",
                   f"hydra.run.dir={tmp_path}", check=False)  # fmt: skip
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [
        f"error: sampler=meanflow takes average-velocity steps of a MeanFlow model "
        f"(model=meanflow); {edm_ckpt} is a diffusion model: sample it with "
        f"sampler=dpm_solver_sde"
    ]


def test_progressive_distillation_resumes_across_rounds_and_refuses_odd_halvings(
    edm_ckpt, tmp_path
):
    weights = _resumes_exactly(tmp_path, *PD, f"model.teacher={edm_ckpt}")
    assert any(k.startswith("teacher.") for k in weights)
    last = torch.load(tmp_path / "straight" / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["student_steps"] == 2 and last["teacher_round"] == 1
    with pytest.raises(ConfigError, match=r"model.steps=12 cannot be halved model.rounds=3"):
        train_in_process(tmp_path / "odd", *PD, f"model.teacher={edm_ckpt}", "model.steps=12",
                         "model.rounds=3", steps=12)  # fmt: skip
    with pytest.raises(ConfigError, match="path=ddpm's levels are its trained indices"):
        train_in_process(tmp_path / "ddpm", *PD, "path=ddpm", f"model.teacher={edm_ckpt}", steps=8)


def test_one_round_of_distillation_brings_the_student_closer_to_its_teacher(edm_ckpt, tmp_path):
    """The student of 2 steps against its teacher's 4-step DDIM output on held-out noise: after
    one round it matches better than at the start (the teacher's own weights)."""
    from ddpm.checkpoint import load_checkpoint
    from ddpm.config import ModelRecipe
    from ddpm.samplers import builtin_sampler

    train_in_process(tmp_path, "path=edm", "model=progressive_distill", "model.steps=4",
                     "model.rounds=1", "model.round_steps=300", f"model.teacher={edm_ckpt}",
                     "model.lr=1e-3", "model.warmup_steps=0", "model.lr_decay=none",
                     "sampler=ddim", "sampler.spacing=trailing", "sampler.steps=2",
                     steps=300)  # fmt: skip

    def draw(ckpt_path, steps, use_ema):
        ckpt = load_checkpoint(ckpt_path)
        recipe = ModelRecipe.from_run_config(ckpt["hyper_parameters"]["run_config"])
        model = recipe.build_model(recipe.load_network(ckpt, use_ema, "ckpt"), "ckpt")
        spec = builtin_sampler("ddim").updated(steps=steps, spacing="trailing")
        noise = torch.randn(2000, 2, generator=torch.Generator().manual_seed(123))
        with torch.no_grad():
            return spec.draw(model.denoiser_factory()(None), noise)[0]

    target = draw(edm_ckpt, 4, True)
    before = (draw(edm_ckpt, 2, True) - target).pow(2).mean()
    after = (draw(tmp_path / "checkpoints" / "last.ckpt", 2, False) - target).pow(2).mean()
    assert after < 0.5 * before, (float(before), float(after))
