"""A frozen image backbone as encoder: ``image-backbone:<file.pt2>``, uint8 images -> feature vectors.

The file is a program saved by ``torch.export.save`` (PyTorch 2's ahead-of-time export): any torchvision
or timm architecture with the user's weights, exported with its classification head removed, e.g.::

    m = torchvision.models.resnet18(); m.load_state_dict(torch.load("weights.pth")); m.fc = nn.Identity()
    ep = torch.export.export(m.eval(), (torch.zeros(2, 3, 224, 224),),
                             dynamic_shapes=({0: torch.export.Dim("n")},))
    torch.export.save(ep, "resnet18.pt2")

Loading needs neither the architecture's code nor pickle (no code in the file runs), and nothing is
downloaded. Inputs: uint8 (n, H, W, C) -> float (n, C, H, W) in [0, 1], normalised by ``MEAN`` / ``STD``
(ImageNet's, what torchvision's and timm's pretrained weights expect), at the size the images are stored
in. Output: the program's output flattened to (n, dim); ``dim`` is found by one forward pass of a blank
image. The backbone is frozen: no gradients, never trained (the MLP head on its features is the model the
rounds train). Kornblith et al., "Do Better ImageNet Models Transfer Better?" (CVPR 2019) for frozen
features + a trained head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tbal.config import ConfigError
from tbal.encoders.base import Encoder, EncoderConfig
from tbal.encoders.images import check_shape
from tbal.errors import TBALInputError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class ImageBackboneEncoder(Encoder):
    """(n, H, W, C) uint8 images (C = 3; grey images are repeated to 3 channels) -> (n, dim) float32."""

    kind = "image"

    def __init__(self, config: EncoderConfig, image_shape: tuple[int, ...] = (224, 224, 3)) -> None:
        super().__init__(config)
        path = Path(str(config.path))
        if not path.is_file():
            raise ConfigError(f"encoder: backbone file {path} does not exist")
        self.path = path
        self.image_shape = check_shape(image_shape)
        self._module: Any = None
        self._device: Any = None
        self._dim: int | None = None

    @property
    def dim(self) -> int:
        if self._dim is None:
            blank = np.zeros((1, *self.image_shape), dtype=np.uint8)
            self._dim = int(self._forward(blank).shape[1])
        return self._dim

    def _check(self, items: Any) -> np.ndarray:
        X = np.asarray(items)
        if X.dtype != np.uint8 or X.shape[1:] != self.image_shape:
            raise TBALInputError(
                f"expected uint8 images of shape (n, {', '.join(map(str, self.image_shape))}), "
                f"got {X.dtype} {X.shape}"
            )
        return X

    def _encode(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(batch)

    def _load(self) -> Any:
        if self._module is None:
            import torch

            device = self.config.device
            if device == "auto":
                device = "cuda" if torch.cuda.is_available() else "cpu"
            try:
                program = torch.export.load(str(self.path))
            except Exception as exc:  # a damaged or foreign file: torch raises many kinds
                raise ConfigError(
                    f"encoder: {self.path} is not a program saved by torch.export.save: {exc}"
                ) from exc
            self._device = torch.device(device)
            self._module = program.module().to(self._device)
        return self._module

    def _forward(self, images: np.ndarray) -> np.ndarray:
        import torch

        module = self._load()
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self._device)  # (n, H, W[, C]) uint8
        if x.ndim == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).float().div_(255.0)  # (n, C, H, W) in [0, 1]
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = x[:, :3]
        mean = torch.tensor(MEAN, device=self._device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=self._device).view(1, 3, 1, 1)
        with torch.no_grad():
            out = module((x - mean) / std)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.reshape(out.shape[0], -1).float().cpu().numpy()  # (n, dim)
