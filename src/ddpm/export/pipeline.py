"""A diffusers pipeline for a class-conditional ``UNet2DModel`` with classifier-free guidance.

``python -m ddpm.export`` copies this file into the exported folder as ``pipeline.py``, so it
loads without this package, offline::

    from diffusers import DiffusionPipeline
    pipe = DiffusionPipeline.from_pretrained(FOLDER, custom_pipeline=FOLDER, trust_remote_code=True)
    images = pipe(class_labels=[0, 1, 2], guidance_scale=2.0, num_inference_steps=100).images

The label ``num_class_embeds - 1`` is the null label of classifier-free guidance (Ho & Salimans
2022): the guided prediction is ``null + w (conditional - null)``, linear in the network's
output, so it is the same guidance whichever of noise, x0 or velocity the network predicts. A
network that also predicts its variance (twice the channels) keeps the conditional variance.
Only torch and diffusers are imported here.
"""

from __future__ import annotations

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput
from diffusers.utils.torch_utils import randn_tensor


class ClassConditionalPipeline(DiffusionPipeline):
    model_cpu_offload_seq = "unet"

    def __init__(self, unet, scheduler) -> None:
        super().__init__()
        self.register_modules(unet=unet, scheduler=scheduler)

    @torch.no_grad()
    def __call__(
        self,
        class_labels,
        guidance_scale: float = 1.0,
        num_inference_steps: int = 1000,
        generator: torch.Generator | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
    ):
        labels = torch.as_tensor(class_labels, device=self.device).long().reshape(-1)
        null = torch.full_like(labels, self.unet.config.num_class_embeds - 1)
        channels, size = self.unet.config.in_channels, self.unet.config.sample_size
        image = randn_tensor(
            (len(labels), channels, size, size), generator=generator, device=self.device,
            dtype=self.unet.dtype,
        )  # fmt: skip
        self.scheduler.set_timesteps(num_inference_steps)
        for t in self.progress_bar(self.scheduler.timesteps):
            scale = getattr(self.scheduler, "scale_model_input", None)  # not every scheduler has it
            model_input = image if scale is None else scale(image, t)
            if guidance_scale == 1.0:
                out = self.unet(model_input, t, class_labels=labels).sample
            else:
                both = self.unet(
                    torch.cat([model_input, model_input]), t, class_labels=torch.cat([labels, null])
                ).sample
                cond, uncond = both.chunk(2)
                guided = uncond[:, :channels] + guidance_scale * (
                    cond[:, :channels] - uncond[:, :channels]
                )
                out = torch.cat([guided, cond[:, channels:]], dim=1)
            image = self.scheduler.step(out, t, image, generator=generator).prev_sample
        image = (image / 2 + 0.5).clamp(0, 1).cpu().permute(0, 2, 3, 1).float().numpy()
        if output_type == "pil":
            image = self.numpy_to_pil(image)
        return ImagePipelineOutput(images=image) if return_dict else (image,)
