"""``latent=diffusers_vae``: any ``AutoencoderKL`` folder saved by diffusers (``save_pretrained``),
e.g. Stable Diffusion's ``sd-vae-ft-ema`` downloaded by the user, with the ``scaling_factor`` and
``shift_factor`` of its config (Rombach et al. 2022; SD's 0.18215 makes the latents unit-scale)."""

from __future__ import annotations

import json
from pathlib import Path

from torch import Tensor

from ddpm.checks import ConfigError
from ddpm.data.info import DataInfo
from ddpm.latents.base import DEFAULT_CACHE, Autoencoder, check_image_fit, file_digest

WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


class DiffusersVAE(Autoencoder):
    """``path``: the folder (``config.json`` naming ``AutoencoderKL`` and its weights)."""

    name = "diffusers AutoencoderKL"

    def __init__(
        self,
        path: str | None = None,
        scaling_factor: float | str | None = None,
        shift_factor: float | str | None = None,
        cache_dir: str = DEFAULT_CACHE,
        fingerprint: str | None = None,
        batch_size: int = 64,
    ) -> None:
        super().__init__(scaling_factor, shift_factor, cache_dir, batch_size, fingerprint)
        if not path:
            raise ConfigError(
                "latent=diffusers_vae needs latent.path=DIR: a folder AutoencoderKL.save_pretrained "
                "wrote (e.g. stabilityai/sd-vae-ft-ema, downloaded)"
            )
        self.path = Path(path).expanduser()
        config = self.path / "config.json"
        try:
            self.config = json.loads(config.read_text())
        except (OSError, ValueError):
            raise ConfigError(
                f"latent.path={path} is not an autoencoder folder: no readable config.json; give "
                f"the folder AutoencoderKL.save_pretrained wrote"
            ) from None
        if self.config.get("_class_name") != "AutoencoderKL":
            raise ConfigError(
                f"latent.path={path} holds a {self.config.get('_class_name', 'model without a class')}"
                f", not an AutoencoderKL; give the folder AutoencoderKL.save_pretrained wrote"
            )
        self.weights = next((self.path / w for w in WEIGHTS if (self.path / w).is_file()), None)
        if self.weights is None:
            raise ConfigError(
                f"latent.path={path} has a config.json but no weights ({' or '.join(WEIGHTS)})"
            )
        self._vae = None
        self._digest: str | None = None

    def latent_shape(self, data: DataInfo) -> tuple[int, ...]:
        factor = 2 ** (len(self.config.get("block_out_channels", [0])) - 1)
        check_image_fit(
            f"latent.path={self.path}", data, int(self.config.get("in_channels", 3)), factor
        )
        return (
            int(self.config.get("latent_channels", 4)),
            data.shape[1] // factor,
            data.shape[2] // factor,
        )

    def own_factors(self) -> tuple[float, float]:
        return float(self.config.get("scaling_factor") or 1.0), float(
            self.config.get("shift_factor") or 0.0
        )

    def location(self) -> dict[str, str]:
        return {"path": str(self.path.resolve())}

    def fingerprint(self) -> str:
        if self._digest is None:
            config = json.dumps(self.config, sort_keys=True).encode()
            self._digest = file_digest(self.weights, config)  # type: ignore[arg-type]
        return self._digest

    def vae(self, device):
        if self._vae is None:
            try:
                from diffusers import AutoencoderKL
            except ImportError:
                raise ConfigError(
                    "latent=diffusers_vae needs diffusers: pip install -e '.[export]'"
                ) from None
            self._vae = (
                AutoencoderKL.from_pretrained(self.path, low_cpu_mem_usage=False)
                .eval()
                .requires_grad_(False)
            )
        return self._vae.to(device)

    def encode_mean(self, x: Tensor) -> Tensor:
        return self.vae(x.device).encode(x).latent_dist.mean

    def decode_mean(self, z: Tensor) -> Tensor:
        return self.vae(z.device).decode(z).sample
