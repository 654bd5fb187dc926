"""``latent=vae``: a ``model=vae`` checkpoint of ours (the seed's Example 1) as the autoencoder of a
latent diffusion model, with its EMA weights; train it with ``network.latent_channels`` set for
the spatial latent an image network takes (``experiment=digits_latent_ae``). Its factors default
to ``auto``: measured on the encoded training set."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, cast

from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.data.info import DataInfo
from ddpm.latents.base import DEFAULT_CACHE, Autoencoder, file_digest

if TYPE_CHECKING:
    from ddpm.nets.vae import VAE


class CheckpointVAE(Autoencoder):
    """``ckpt``: a checkpoint ``train.py model=vae`` wrote."""

    name = "VAE"

    def __init__(
        self,
        ckpt: str | None = None,
        scaling_factor: float | str | None = "auto",
        shift_factor: float | str | None = "auto",
        cache_dir: str = DEFAULT_CACHE,
        fingerprint: str | None = None,
        batch_size: int = 256,
    ) -> None:
        super().__init__(scaling_factor, shift_factor, cache_dir, batch_size, fingerprint)
        from ddpm.checkpoint import CheckpointError, checkpoint_config, load_checkpoint
        from ddpm.config.recipe import ModelRecipe

        if not ckpt:
            raise ConfigError(
                "latent=vae needs latent.ckpt=CKPT: a checkpoint of train.py model=vae"
            )
        self.ckpt = Path(ckpt).expanduser()
        try:
            state = load_checkpoint(self.ckpt)
            self.recipe = ModelRecipe.from_run_config(
                checkpoint_config(state, self.ckpt), str(ckpt)
            )
        except CheckpointError as e:
            raise ConfigError(f"latent.ckpt={ckpt}: {e}") from None
        family = getattr(self.recipe.model.fn, "model_family", None)
        if getattr(family, "__name__", "") != "VAEModel":
            raise ConfigError(
                f"latent.ckpt={ckpt} is not a VAE checkpoint (model={self.recipe.model.target}); "
                f"give one train.py model=vae wrote"
            )
        net = self.recipe.load_network(state, True, str(ckpt)).requires_grad_(False)
        self.net = cast("VAE", net)  # a VAEModel's network (checked above)
        self._digest: str | None = None

    def latent_shape(self, data: DataInfo) -> tuple[int, ...]:
        trained = self.recipe.data
        if tuple(trained.shape) != tuple(data.shape):
            raise ConfigError(
                f"latent.ckpt={self.ckpt} encodes data of shape {tuple(trained.shape)} "
                f"({trained.name}); the data {data.name} have shape {tuple(data.shape)}"
            )
        return tuple(self.net.latent_shape)

    def location(self) -> dict[str, str]:
        return {"ckpt": str(self.ckpt.resolve())}

    def fingerprint(self) -> str:
        if self._digest is None:
            self._digest = file_digest(self.ckpt)
        return self._digest

    def encode_mean(self, x: Tensor) -> Tensor:
        return self.net.to(x.device).encode(x)[0]

    def decode_mean(self, z: Tensor) -> Tensor:
        return self.net.to(z.device).decode(z)[0]
