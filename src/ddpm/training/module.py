"""The LightningModule: one network, its EMA copy, a path (the formulation: forward process,
training noise levels, loss weight, preconditioning), a prediction type and a loss."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from typing import Annotated, Any, Literal, cast

import torch
from torch import Tensor, nn

from ddpm.checks import NON_NEGATIVE, ConfigError, PositiveFloat, PositiveInt, Probability, Range
from ddpm.config import ModelRecipe
from ddpm.config.ema import ema_sigma_rels
from ddpm.config.wiring import check_repa_depth
from ddpm.diffusion import TrainedVariance
from ddpm.losses import LossType
from ddpm.models import DiffusionModel, SamplingOptions
from ddpm.paths import Path, as_path
from ddpm.random import fork_init, step_generator
from ddpm.repa import TokenNetwork
from ddpm.repa.loss import Projector, REPAConfig, alignment_loss, resample_features
from ddpm.samplers import SamplerSpec, builtin_sampler
from ddpm.schedule import Schedule
from ddpm.timestep_sampler import ImportanceSampler, TimestepSampling
from ddpm.training.base import AveragedModule, dropped_labels, with_labels

LRDecay = Literal["none", "cosine"]
EMADecay = Annotated[float, Range(0, 1, hi_open=True)]


class DiffusionModule(AveragedModule):
    """Trains ``net`` to denoise on ``path`` (a :class:`ddpm.paths.Path`; a
    :class:`~ddpm.schedule.Schedule` means its discrete chain).

    * ``prediction``: ``auto`` (the path's native target) or one of the path's: eps | x0 | v | mu
      (the seed's eq. 42) on ddpm, eps | x0 | v | velocity on vp, velocity | x0 | eps on flow,
      F on edm; ``loss``: simple | vlb | hybrid | min_snr; ``variance``: fixed_small |
      fixed_large | learned_range (the network then outputs twice the channels); the losses
      other than simple, the learned variance and importance sampling are the discrete chain's.
    * ``conditional``: labels are passed to the network, ``net(x, c_noise, y)``, and dropped with
      ``cond_drop_prob`` so the same network is also the unconditional model (classifier-free
      guidance); an unconditional network is called ``net(x, c_noise)``.
    * ``timestep_sampling``: uniform, or importance (for the VLB loss).
    * ``optimizer``: a partial taking the parameters and ``lr``; ``warmup_steps`` of linear
      learning-rate warm-up; ``lr_decay``: none | cosine (to 0 at ``max_steps``).
    * ``ema_decay``/``ema_warmup``/``ema_every``: the EMA copy (``self.ema``), used for sampling.
    * ``run_config``: the run's whole resolved configuration as plain containers, saved in every
      checkpoint: ``DiffusionModule.load_from_checkpoint(path)`` rebuilds ``net`` and ``path``
      from it, and sample.py/evaluate.py rebuild the model from the checkpoint alone.
    """

    model_family = DiffusionModel

    def __init__(
        self,
        net: nn.Module | None = None,
        path: Path | Schedule | None = None,
        prediction: str = "auto",
        loss: LossType = "simple",
        variance: TrainedVariance = "fixed_small",
        decoder: Literal["discretized", "gaussian"] = "discretized",
        optimizer: Callable | None = None,
        lr: PositiveFloat = 2e-4,
        warmup_steps: Annotated[int, Range(0)] = 0,
        lr_decay: LRDecay = "none",
        max_steps: int = -1,
        ema_decay: EMADecay = 0.9999,
        ema_warmup: bool = True,
        ema_every: PositiveInt = 1,
        conditional: bool = False,
        cond_drop_prob: Probability = 0.1,
        timestep_sampling: TimestepSampling = "uniform",
        vlb_weight: Annotated[float, NON_NEGATIVE] = 1e-3,
        min_snr_gamma: PositiveFloat = 5.0,
        seed: int = 0,
        compile: bool = False,
        channels_last: bool = False,
        repa: dict | None = None,
        repa_encoder: Any = None,
        run_config: dict | None = None,
    ) -> None:
        self.check_config({"loss": loss, "variance": variance})
        if net is None or path is None:  # load_from_checkpoint(path): rebuilt from the run config
            recipe = ModelRecipe.from_run_config(run_config or {}, "run_config")
            net = net if net is not None else recipe.build_network()
            path = path if path is not None else recipe.build_path()
        path = as_path(cast("Path | Schedule", path))  # a diffusion run config names one
        path.check_model(
            {"loss": loss, "variance": variance, "timestep_sampling": timestep_sampling}
        )
        if optimizer is None:
            optimizer = self.stored_plugin(run_config, "optimizer")
        super().__init__(net, optimizer, compile, channels_last, ema_decay=ema_decay,
                         ema_sigma_rels=ema_sigma_rels(run_config))  # fmt: skip
        self.save_hyperparameters(
            ignore=["net", "path", "optimizer", "repa_encoder", "discriminator"]
        )
        self.path = path
        self.prediction = path.resolve_prediction(prediction)
        self.time_sampler = path.time_sampler(timestep_sampling)
        self.repa = REPAConfig.parse(repa, check_files=False)
        self.repa_encoder = repa_encoder
        self.repa_head: Projector | None = None
        self._tokens: Tensor | None = None
        stored = ((run_config or {}).get("model") or {}).get("repa") or {}
        features = repa_encoder.dim if repa_encoder is not None else stored.get("feature_dim")
        if self.repa.enabled and features:  # from a checkpoint: the projector, not the encoder
            self.add_repa(int(features), seed)

    def add_repa(self, features: int, seed: int) -> None:
        """REPA's projector (its own seed: the global random state, hence the data order, stays
        that of a run without REPA) and the hook that keeps block ``depth``'s tokens."""
        check_repa_depth(self.net, type(self.net).__name__, self.repa.depth)
        net = cast(TokenNetwork, self.net)  # it exposes its tokens (checked above)
        width, dim = self.repa.projector_dim, net.token_dim
        self.repa_head = fork_init(seed + 1, lambda: Projector(dim, width, features))

        def keep(module, inputs, output) -> None:
            self._tokens = output

        net.token_block(self.repa.depth).register_forward_hook(keep)

    def heads(self) -> list[nn.Module]:
        return [] if self.repa_head is None else [self.repa_head]

    @classmethod
    def check_network(cls, network_cls) -> str | None:
        """A network that names another model to train it (``trained_by``) is refused."""
        if trained_by := getattr(network_cls, "trained_by", None):
            return (
                f"network={getattr(network_cls, '__name__', network_cls)} is not a denoiser; "
                f"train it with {trained_by}, or pick a denoiser: network=unet, simple_unet or mlp"
            )
        return None

    @classmethod
    def check_config(cls, options: dict[str, Any], network_cls=None) -> None:
        """The checks that span several options (each option alone is checked by its type)."""
        if network_cls is not None and (problem := cls.check_network(network_cls)):
            raise ConfigError(problem)
        if options.get("loss") == "hybrid" and options.get("variance") != "learned_range":
            raise ConfigError(
                "model.loss=hybrid trains the learned variance; set model.variance=learned_range"
            )
        if options.get("variance") == "learned_range" and options.get("loss") not in (
            "hybrid",
            "vlb",
        ):
            raise ConfigError(
                f"model.variance=learned_range is trained only by the VLB term; with "
                f"model.loss={options.get('loss')} it would stay untrained: use model.loss=hybrid"
            )

    # --- sampling ------------------------------------------------------------------------------
    @cached_property
    def latent(self) -> tuple[Any, tuple[int, ...] | None]:
        """A latent model's autoencoder and latent shape (``(None, None)`` otherwise)."""
        config = self.hparams.run_config or {}
        if not config.get("latent"):
            return None, None
        recipe = ModelRecipe.from_run_config(config, "run_config")
        return recipe.build_latent("the run"), recipe.latent_shape

    def model(self, use_ema: bool = True) -> DiffusionModel:  # its model family's
        """The EMA (or raw) network as a model that samples and scores itself."""
        return self.model_family(
            self.ema if use_ema else self.net,
            self.path,
            self.data,
            self.prediction,
            learned=self.hparams.variance == "learned_range",
            conditional=self.hparams.conditional,
            latent=self.latent[0],
            latent_shape=self.latent[1],
        )

    @torch.no_grad()
    def generate(
        self,
        n: int,
        seed: int = 0,
        sampler: SamplerSpec | None = None,
        use_ema: bool = True,
        labels: Tensor | None = None,
        options: SamplingOptions | None = None,
    ) -> Tensor:
        """``n`` samples, sample ``i`` seeded by ``(seed, i)`` (the path sample.py uses too)."""
        sampler = sampler or builtin_sampler("ddpm")
        was_training = self.net.training
        self.net.eval()
        try:
            model = self.model(use_ema)
            options = options or SamplingOptions()
            return model.generate(sampler, options, range(n), seed, n, labels, self.device)[0]
        finally:
            self.net.train(was_training)

    # --- training -----------------------------------------------------------------------------------
    def _losses(
        self, net: nn.Module, x0: Tensor, y: Tensor, generator: torch.Generator | None
    ) -> tuple[dict, Tensor, Tensor]:
        n = x0.shape[0]
        t, weights = self.time_sampler.sample(n, self.device, generator)
        noise = torch.randn(x0.shape, generator=generator, device=self.device, dtype=x0.dtype)
        noise = self.path.couple(x0, noise, y if self.hparams.conditional else None)
        x_t = self.path.q_sample(x0, t, noise)
        x_in, c_noise = self.path.network_input(x_t, t)
        if self.hparams.channels_last and x_in.ndim == 4:
            x_in = x_in.contiguous(memory_format=torch.channels_last)
        conditional, drop = self.hparams.conditional, self.hparams.cond_drop_prob
        labels = dropped_labels(y, drop, generator) if conditional else None
        out = with_labels(net, labels)(x_in, c_noise)
        terms = self.path.losses(
            out, x0, x_t, t, noise, self.prediction,
            loss=self.hparams.loss, variance=self.hparams.variance, decoder=self.hparams.decoder,
            vlb_weight=self.hparams.vlb_weight, min_snr_gamma=self.hparams.min_snr_gamma,
        )  # fmt: skip
        return terms, t, weights

    def training_step(self, batch, batch_idx: int) -> Tensor:
        x0, y = batch[:2]
        g = step_generator(self.hparams.seed, self.global_rank, self.global_step, self.device)
        self._tokens = None
        terms, t, weights = self._losses(self.net, x0, y, g)
        loss = (terms["loss"] * weights).mean()
        backward = loss
        if self.repa_head is not None and self.repa_encoder is not None:
            terms["repa"] = self.repa_term(batch[2] if len(batch) > 2 else x0)
            loss = loss + self.repa.weight * terms["repa"].mean()
            # with a zero weight the projector alone learns from the term (a probe of the
            # tokens: no gradient reaches the network, the run is the run without REPA)
            backward = loss if self.repa.weight > 0 else loss + terms["repa"].mean()
        self.check_finite(loss)
        if "vlb" in terms:
            self.time_sampler.update(t, terms["vlb"])
        self.log("train/loss", loss, prog_bar=True)  # every step: the progress line shows it
        self.log_step()  # every step: checkpoint names read it
        if self.logs_this_step():
            self.log_diagnostics(terms, t)
        return backward

    def repa_term(self, pixels: Tensor) -> Tensor:
        """REPA's per-example alignment of the tokens the hook kept in this step's forward with
        the encoder's features of the clean images (detached tokens at weight 0)."""
        tokens, self._tokens = self._tokens, None
        assert tokens is not None and self.repa_head is not None  # the step's forward, add_repa
        if self.repa.weight == 0:
            tokens = tokens.detach()
        target = resample_features(
            self.repa_encoder(pixels), cast(TokenNetwork, self.net).token_grid
        )
        return alignment_loss(self.repa_head(tokens), target)

    def log_diagnostics(self, terms: dict, t: Tensor) -> None:
        """The VLB, the MSE and the MSE per quarter of the training times."""
        if "vlb" in terms:
            self.log("train/vlb", terms["vlb"].mean())
        if "repa" in terms:
            self.log("train/repa", terms["repa"].mean())
        self.log("train/mse", terms["mse"].mean())
        quartile = (self.path.time_fraction(t) * 4).floor().clamp(max=3)
        for q in range(4):
            mask = quartile == q
            if mask.any():
                self.log(f"train/mse_q{q}", terms["mse"][mask].mean())

    def eval_loss(self, net: nn.Module, batch, batch_idx: int) -> Tensor:
        """``L_simple`` of ``net`` with noise fixed by the batch index."""
        x0, y = batch[:2]
        g = torch.Generator(device=self.device).manual_seed(10_000 + batch_idx)
        return self._losses(net, x0, y, g)[0]["mse"].mean()

    # --- checkpoint extras -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        if isinstance(self.time_sampler, ImportanceSampler):
            checkpoint["timestep_sampler"] = self.time_sampler.state_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint.get("timestep_sampler")
        if isinstance(self.time_sampler, ImportanceSampler) and state is not None:
            self.time_sampler.load_state_dict(state)
