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
    """``extractor(x)``: ``(N, D)`` float64 features of samples ``x`` in data space.

    ``features(x, spaces)`` gives several feature spaces from one pass, each ``(N, D)`` float64:
    ``pool`` (what ``extractor(x)`` returns: FID, KID, precision/recall), ``spatial`` (sFID) and
    ``logits`` (Inception Score), for the spaces in ``provides``."""

    name: str = "base"
    provides: tuple[str, ...] = ("pool",)

    def __call__(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def features(self, x: Tensor, spaces=("pool",)) -> dict[str, Tensor]:
        self._check_spaces(spaces)
        return {"pool": self(x)}

    def _check_spaces(self, spaces) -> None:
        if missing := sorted(set(spaces) - set(self.provides)):
            raise ValueError(f"the {self.name} features have no {', '.join(missing)} space")


def spatial_block(feature_map: Tensor, channels: int = 7) -> Tensor:
    """sFID's features (Nash et al. 2021, as ADM's evaluator takes them): the first ``channels``
    channels of a convolution's map, flattened in height-width-channel order (TensorFlow's), so
    statistics stored by ADM's evaluator are read in the same coordinates."""
    return feature_map[:, :channels].permute(0, 2, 3, 1).reshape(len(feature_map), -1).double()


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
    provides = ("pool", "spatial", "logits")

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
            ["2048", "logits_unbiased"],
            feature_extractor_weights_path=str(path),
            feature_extractor_internal_dtype="float64",
        ).to(device)
        self.device, self.batch_size = device, batch_size
        self._spatial: list[Tensor] = []
        # TensorFlow's "mixed_6/conv" (ADM's sFID layer) is the 1x1 branch of the third 17x17
        # block, Mixed_6d here; its output is taken after batch norm and ReLU, as in the graph.
        self.model.Mixed_6d.branch1x1.register_forward_hook(
            lambda m, i, out: self._spatial.append(spatial_block(out))
        )

    def __call__(self, x: Tensor) -> Tensor:
        return self.features(x)["pool"]

    @torch.no_grad()
    def features(self, x: Tensor, spaces=("pool",)) -> dict[str, Tensor]:
        self._check_spaces(spaces)
        out: dict[str, list[Tensor]] = {s: [] for s in spaces}
        for chunk in x.split(self.batch_size):
            img = to_uint8(chunk)
            if img.shape[1] == 1:
                img = img.repeat(1, 3, 1, 1)
            self._spatial.clear()
            pool, logits = self.model(img.to(self.device))
            found = {"pool": pool, "logits": logits, "spatial": self._spatial[0]}
            for s in spaces:
                out[s].append(found[s].double().cpu())
        width = {"pool": 2048, "logits": 1008, "spatial": 17 * 17 * 7}
        return {
            s: torch.cat(v) if v else torch.zeros(0, width[s], dtype=torch.float64)
            for s, v in out.items()
        }


class ClassifierExtractor(FeatureExtractor):
    """Features and class probabilities from a :class:`DigitClassifier` trained on the real
    training split, cached in ``cache_dir`` keyed by dataset name and the data itself."""

    provides = ("pool", "spatial", "logits")

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
    def features(self, x: Tensor, spaces=("pool",)) -> dict[str, Tensor]:
        """The classifier's analogues of ADM's spaces: its 128-d feature layer (``pool``), the
        first 7 channels of its last convolution's map (``spatial``) and its logits."""
        self._check_spaces(spaces)
        x = to_uint8(x).double() / 127.5 - 1.0  # score what a saved image would show
        f, logits = self.model(x)
        found = {"pool": f, "logits": logits}
        if "spatial" in spaces:
            found["spatial"] = spatial_block(self.model.patch_features(x))
        return {s: found[s] for s in spaces}

    def features_and_probs(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x, ("pool", "logits"))
        return f["pool"], f["logits"].softmax(-1)

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
