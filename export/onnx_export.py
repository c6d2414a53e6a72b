"""Export the trained VAE as a scoring ONNX model: `x` in, `score` and `contrib` out.

The exported graph is what the agent runs on the device (see agent/bundles/manifest.py):

    x        float32 (batch, window, channels), already scaled; batch is dynamic
    contrib  float32 (batch, channels): mean over the window of (x - recon)^2, divided by
             that channel's mean on held-out normal windows (1.0 = a typical window)
    score    float32 (batch,): the largest contribution (`--score max`, the default) or
             their mean (`--score mean`); with `+latent` (`--score mean+latent`) that part in
             held-out units plus the distance of the window's posterior mean from the training
             windows' (export/latent.py), which a level shift the decoder follows still moves

Normalising per channel and taking the maximum lets one sensor that goes wrong stand out: a
noisy channel (vibration) and a quiet, well-explained one (motor current) weigh the same, and
eight healthy channels do not dilute the ninth. On the demo line this cut the step-fault
delay from 10-26 s to 1-3 s with no more normal windows above the threshold.

Reconstruction goes through the posterior mean mu, so scoring is deterministic.

Exporter: the dynamo exporter (`torch.onnx.export(..., dynamo=True)`), the default in torch
2.13. It has no implementations below opset 18, and its down-conversion to 17 fails on this
graph (ReduceMean's axes input), so the model is exported at opset 18 directly. It is asked for
a single file (`external_data=False`); `ensure_single_file` still checks for and folds back a
stray `.onnx.data` file, since the agent verifies and loads exactly the files the manifest lists.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
import torch
from torch import nn

from export.errors import ExportError
from export.latent import LatentTerm, latent_distance, whitening
from export.train import Vae

Float32Array = npt.NDArray[np.float32]
OPSET = 18
INPUT_NAME = "x"
OUTPUT_NAMES = ("score", "contrib")
#: Scaled inputs are clipped to +-INPUT_CLIP (robust sigmas) before the model sees them: far
#: beyond the training range the reconstruction means nothing, and a clipped channel still
#: scores a large error. It also bounds the activations int8 has to represent.
INPUT_CLIP = 10.0

# Loggers of the dynamo exporter that warn about optional extras (e.g. torchvision ops).
_NOISY_LOGGERS = ("torch.onnx", "torch.export", "torch._export", "onnxscript")


def prepare(windows: Float32Array, relative: Float32Array | None = None) -> Float32Array:
    """What the model sees of scaled windows: clipped, relative channels minus their mean.

    The numpy twin of the first step of `ScoringModule`; training windows go through it so
    the model is trained on exactly what it scores on the device.
    """
    x = np.clip(windows, -INPUT_CLIP, INPUT_CLIP).astype(np.float32)
    if relative is not None and relative.any():
        x = x - relative.astype(np.float32) * x.mean(axis=1, keepdims=True)
    return x


class ScoringModule(nn.Module):
    """Wraps a trained VAE: windows in, (score, contrib) out, no sampling.

    `relative` (0/1 per channel) marks the channels modelled without their level: each window
    of such a channel is centred on its own mean before the model sees it, so a slow drift
    (the water of a test rig warming through the day) is not an anomaly, while a change in the
    channel's short-term shape still is.
    """

    def __init__(
        self,
        vae: Vae,
        baseline: torch.Tensor | None = None,
        relative: torch.Tensor | None = None,
        reduce: str = "max",
        latent: LatentTerm | None = None,
    ) -> None:
        super().__init__()
        self.vae = vae
        self.reduce = reduce
        self.latent = latent is not None
        ones = torch.ones(vae.channels, dtype=torch.float32)
        zeros = torch.zeros(vae.channels, dtype=torch.float32)
        self.register_buffer("baseline", ones if baseline is None else baseline.float())
        self.register_buffer("relative", zeros if relative is None else relative.float())
        if latent is not None:
            self.register_buffer("latent_center", torch.from_numpy(latent.center))
            self.register_buffer("latent_whiten", torch.from_numpy(latent.whiten))
            units = [latent.rec_unit, latent.latent_unit / latent.weight]
            self.register_buffer("latent_units", torch.tensor(units, dtype=torch.float32))

    def errors_and_mu(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean squared reconstruction error (batch, channels), not normalised,
        and the posterior means (batch, latent)."""
        x = torch.clamp(x, -INPUT_CLIP, INPUT_CLIP)
        relative: torch.Tensor = self.get_buffer("relative")
        x = x - relative * torch.mean(x, dim=1, keepdim=True)
        mu, _ = self.vae.encode(x)
        recon = self.vae.decode(mu)
        return torch.mean((x - recon) ** 2, dim=1), mu

    def raw_errors(self, x: torch.Tensor) -> torch.Tensor:
        """Mean squared reconstruction error per channel (batch, channels), not normalised."""
        return self.errors_and_mu(x)[0]

    def reduce_contrib(self, contrib: torch.Tensor) -> torch.Tensor:
        """The reconstruction part of the score: the largest or the mean contribution."""
        if self.reduce == "max":
            return torch.amax(contrib, dim=1)
        return torch.mean(contrib, dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score a batch of scaled windows (batch, window, channels)."""
        baseline: torch.Tensor = self.get_buffer("baseline")
        errors, mu = self.errors_and_mu(x)
        contrib = errors / baseline
        score = self.reduce_contrib(contrib)
        if self.latent:
            units: torch.Tensor = self.get_buffer("latent_units")
            center: torch.Tensor = self.get_buffer("latent_center")
            whiten: torch.Tensor = self.get_buffer("latent_whiten")
            score = score / units[0] + latent_distance(mu, center, whiten) / units[1]
        return score, contrib


def channel_baseline(
    model: Vae, windows: Float32Array, relative: Float32Array | None = None
) -> Float32Array:
    """Each channel's mean reconstruction error on normal (scaled) windows: the unit of
    `contrib`."""
    rel = None if relative is None else torch.from_numpy(relative.astype(np.float32))
    scoring = ScoringModule(model, relative=rel).eval()
    with torch.no_grad():
        errors = scoring.raw_errors(torch.from_numpy(np.ascontiguousarray(windows)))
    # A channel the model reconstructs perfectly must not divide by zero.
    floor = max(float(errors.mean()) * 1e-3, 1e-12)
    baseline: Float32Array = np.maximum(errors.mean(dim=0).numpy(), floor).astype(np.float32)
    return baseline


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's informational logging and one known library FutureWarning."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in _NOISY_LOGGERS]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            # torch 2.13's exporter pickles pytree specs with the old LeafSpec class; the
            # warning is raised from the stdlib copyreg module, so it cannot be filtered by
            # torch's module name. Nothing in this package uses LeafSpec.
            warnings.filterwarnings(
                "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
            )
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def ensure_single_file(path: Path) -> None:
    """Fold any external-data file next to an ONNX model back into the model file."""
    strays = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".")]
    model = onnx.load(str(path), load_external_data=True)
    if strays or any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    ):
        for init in model.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                del init.external_data[:]
                init.data_location = onnx.TensorProto.DEFAULT
        onnx.save_model(model, str(path), save_as_external_data=False)
        for stray in strays:
            stray.unlink()
    onnx.checker.check_model(str(path), full_check=True)


def scoring_module(
    model: Vae,
    baseline: Float32Array | None = None,
    relative: Float32Array | None = None,
    reduce: str = "max",
    latent: LatentTerm | None = None,
) -> ScoringModule:
    """The scoring graph of a trained model, in eval mode (what `export_onnx` writes)."""
    return ScoringModule(
        model,
        None if baseline is None else torch.from_numpy(baseline),
        None if relative is None else torch.from_numpy(relative.astype(np.float32)),
        reduce,
        latent,
    ).eval()


def export_onnx(
    model: Vae,
    path: Path,
    baseline: Float32Array | None = None,
    relative: Float32Array | None = None,
    reduce: str = "max",
    latent: LatentTerm | None = None,
) -> None:
    """Write the scoring graph of `model` to `path` as one self-contained ONNX file."""
    scoring = scoring_module(model, baseline, relative, reduce, latent)
    example = torch.zeros((2, model.window, model.channels), dtype=torch.float32)
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                scoring,
                (example,),
                dynamo=True,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_shapes=({0: torch.export.Dim("batch")},),
                external_data=False,
                verbose=False,
            )
            if program is None:  # only the legacy exporter returns None
                raise ExportError("torch.onnx.export returned no program")
            program.save(str(path), external_data=False)
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many private error types
        raise ExportError(f"ONNX export failed: {type(exc).__name__}: {exc}") from exc
    ensure_single_file(path)
    _check_signature(path, model.window, model.channels)


def _check_signature(path: Path, window: int, channels: int) -> None:
    """The exported graph has the input and outputs the agent expects."""
    graph = onnx.load(str(path)).graph
    inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    if inputs != [INPUT_NAME] or outputs != list(OUTPUT_NAMES):
        raise ExportError(f"{path.name}: exported inputs {inputs}, outputs {outputs}")
    dims = graph.input[0].type.tensor_type.shape.dim
    if (
        len(dims) != 3
        or dims[0].dim_value != 0
        or [d.dim_value for d in dims[1:]]
        != [
            window,
            channels,
        ]
    ):
        raise ExportError(f"{path.name}: input x is not (batch, {window}, {channels})")


def fit_latent(
    model: Vae,
    train: Float32Array,
    held_out: Float32Array,
    baseline: Float32Array,
    relative: Float32Array | None,
    reduce: str,
) -> LatentTerm:
    """Fit the term on scaled windows: centre and whitening on `train`, units on `held_out`."""
    scoring = scoring_module(model, baseline, relative, reduce)
    with torch.no_grad():
        _, mu_train = scoring.errors_and_mu(torch.from_numpy(np.ascontiguousarray(train)))
        center, whiten = whitening(mu_train.numpy())
        errors, mu_held = scoring.errors_and_mu(torch.from_numpy(np.ascontiguousarray(held_out)))
        rec = scoring.reduce_contrib(errors / torch.from_numpy(baseline))
        dist = latent_distance(mu_held, torch.from_numpy(center), torch.from_numpy(whiten))
    return LatentTerm(
        center=center,
        whiten=whiten,
        rec_unit=max(float(rec.mean()), 1e-12),
        latent_unit=max(float(dist.mean()), 1e-12),
    )
