"""Feature extractors for FID-style scores, chosen by the kind of data.

* RGB images: Inception-v3 (TensorFlow-compatible port in torch-fidelity), pool3 2048-d features,
  computed in float64 on uint8 images (rounded, not truncated) with torch-fidelity's
  TF1-compatible bilinear resize: the protocol behind published FIDs.
* 1-channel digit-like images (sklearn digits, MNIST): Inception features of an 8x8 or 28x28
  grey digit are meaningless, so a small CNN classifier trained on the real training split (fixed
  seed, cached) provides 128-d features and class probabilities.
* 2-D points: the coordinates themselves (``identity``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import Tensor

from ddpm.evaluation.progress import progress_bar
from ddpm.figures import to_uint8
from ddpm.nets.digit_classifier import DigitClassifier, train_classifier

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = (
    f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{INCEPTION_FILE}"
)


class FeatureExtractor:
    """``extractor(x)``: ``(N, D)`` float64 features of samples ``x`` in data space."""

    name: str = "base"

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError


class IdentityExtractor(FeatureExtractor):
    name = "identity"

    def __call__(self, x: Tensor) -> Tensor:
        return x.reshape(len(x), -1).double()


def default_inception_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE


class InceptionExtractor(FeatureExtractor):
    """torch-fidelity's Inception-v3 from a local weights file (``fid.weights_path``), or the torch
    hub cache where torch-fidelity downloads it. The file is checked with
    ``torch.load(weights_only=True)`` first (torch-fidelity itself loads it unrestricted)."""

    name = "inception-v3-compat"

    def __init__(
        self, weights_path: str | Path | None = None, device="cpu", batch_size: int = 64
    ) -> None:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        path = Path(weights_path) if weights_path else default_inception_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"Inception weights not found at {path}. Download {INCEPTION_URL} and pass "
                f"fid.weights_path=/path/to/{INCEPTION_FILE} (or put it at {default_inception_path()})"
            )
        try:
            torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            raise ValueError(
                f"refusing Inception weights {path}: not a plain state dict ({e})"
            ) from None
        self.model = FeatureExtractorInceptionV3(
            "inception-v3-compat",
            ["2048"],
            feature_extractor_weights_path=str(path),
            feature_extractor_internal_dtype="float64",
        ).to(device)
        self.device, self.batch_size = device, batch_size

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        feats = []
        for chunk in x.split(self.batch_size):
            img = to_uint8(chunk)
            if img.shape[1] == 1:
                img = img.repeat(1, 3, 1, 1)
            feats.append(self.model(img.to(self.device))[0].double().cpu())
        return torch.cat(feats) if feats else torch.zeros(0, 2048, dtype=torch.float64)


class ClassifierExtractor(FeatureExtractor):
    """Features and class probabilities from a :class:`DigitClassifier` trained on the real
    training split, cached in ``cache_dir`` keyed by dataset name and the data itself."""

    def __init__(
        self,
        train_x: Tensor,
        train_y: Tensor,
        num_classes: int,
        dataset: str,
        cache_dir: str | Path,
        seed: int = 0,
        epochs: int = 30,
    ) -> None:
        self.name = f"classifier-{dataset}"
        digest = hashlib.sha1(
            to_uint8(train_x).numpy().tobytes() + train_y.numpy().tobytes()
        ).hexdigest()[:12]
        path = Path(cache_dir) / f"{self.name}-seed{seed}-{digest}.pt"
        self.model = DigitClassifier(num_classes, train_x.shape[1])
        if path.is_file():
            self.model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        else:
            bar = progress_bar("training the digit classifier (once; cached)")
            self.model = train_classifier(train_x, train_y, num_classes, epochs, seed, progress=bar)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{torch.randint(1 << 30, ()).item()}")
            torch.save(self.model.state_dict(), tmp)
            tmp.replace(path)
        self.model = self.model.double().eval()
        self.num_classes = num_classes

    @torch.no_grad()
    def features_and_probs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x = to_uint8(x).double() / 127.5 - 1.0  # score what a saved image would show
        f, logits = self.model(x)
        return f, logits.softmax(-1)

    def __call__(self, x: Tensor) -> Tensor:
        return self.features_and_probs(x)[0]

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        return float((self.features_and_probs(x)[1].argmax(1) == y).double().mean())


def classifier_scores(probs: Tensor, num_classes: int, threshold: float = 0.9) -> dict:
    """Classification-based scores of generated digits: the share the classifier is confident
    about, the class histogram, and its entropy relative to uniform (1 = all classes equally)."""
    pred = probs.argmax(1)
    hist = torch.bincount(pred, minlength=num_classes).double()
    p = hist / hist.sum().clamp(min=1)
    entropy = float(
        -(p[p > 0] * p[p > 0].log()).sum() / torch.log(torch.tensor(float(num_classes)))
    )
    return {
        "confident_share": float((probs.max(1).values > threshold).double().mean()),
        "class_histogram": hist.long().tolist(),
        "class_entropy": entropy,
    }
