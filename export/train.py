"""A small dense VAE over windows of scaled samples, trained deterministically on the CPU.

The model sees a window (window, channels) as one flat vector:

    encoder  flatten -> Linear(window*channels, hidden) -> ReLU -> mu, logvar (latent each)
    decoder  z -> Linear(latent, hidden) -> ReLU -> Linear(hidden, window*channels) -> reshape

The same seed on the same data gives the same weights: the weights are initialised after
`torch.manual_seed(seed)`, batches are shuffled and the reparameterisation noise drawn from a
`torch.Generator` seeded with it, deterministic algorithms are enforced and the thread count is
fixed (the order of a parallel sum can change with the number of threads).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from export.errors import ExportError

Float32Array = npt.NDArray[np.float32]
Log = Callable[[str], None]
#: Called after every epoch with (epoch, validation loss), e.g. to draw a progress bar.
Progress = Callable[[int, float], None]

#: Torch threads while training. One is fastest for a model this small: with two, the
#: workers spend longer synchronising (and spin-waiting on a busy machine) than computing.
TRAIN_THREADS = 1


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of the VAE and of its training loop."""

    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1e-3
    hidden: int = 64
    latent: int = 8
    patience: int = 8
    seed: int = 0
    #: Weight of the adversarial term on the decoder; 0 trains a plain VAE (`--model vae`).
    adversarial: float = 0.0
    #: "dense" (flattened window) or "conv" (1-D convolutions over time).
    encoder: str = "dense"


class Vae(nn.Module):
    """Dense variational autoencoder over flattened (window, channels) inputs."""

    def __init__(self, window: int, channels: int, hidden: int = 64, latent: int = 8) -> None:
        super().__init__()
        self.window = window
        self.channels = channels
        features = window * channels
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.ReLU())
        self.to_mu = nn.Linear(hidden, latent)
        self.to_logvar = nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, features)
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x) for a batch of windows."""
        h = self.encoder(torch.flatten(x, 1))
        mu: torch.Tensor = self.to_mu(h)
        logvar: torch.Tensor = self.to_logvar(h)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstructed windows (batch, window, channels) from latent codes."""
        out: torch.Tensor = self.decoder(z)
        return out.reshape(-1, self.window, self.channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction through the posterior mean (no sampling)."""
        mu, _ = self.encode(x)
        return self.decode(mu)


class ConvVae(Vae):
    """The same VAE with a 1-D convolutional encoder over time (channels as conv channels).

    Two stride-2 convolutions (kernel 5) summarise local shape before the dense bottleneck;
    the decoder is the dense one of `Vae`. Fewer weights than the dense encoder on long windows.
    """

    def __init__(self, window: int, channels: int, hidden: int = 64, latent: int = 8) -> None:
        super().__init__(window, channels, hidden, latent)
        filters = 16
        conv = nn.Sequential(
            nn.Conv1d(channels, filters, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.Conv1d(filters, filters, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
        )
        length = conv(torch.zeros(1, channels, window)).shape[2]
        self.encoder = nn.Sequential(
            conv, nn.Flatten(), nn.Linear(filters * length, hidden), nn.ReLU()
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x); the convolutions run over the time axis."""
        h = self.encoder(torch.transpose(x, 1, 2))
        mu: torch.Tensor = self.to_mu(h)
        logvar: torch.Tensor = self.to_logvar(h)
        return mu, logvar


ENCODERS = {"dense": Vae, "conv": ConvVae}


def vae_loss(
    x: torch.Tensor,
    recon: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Total loss and its reconstruction term: MSE + beta * KL.

    The reconstruction term is the mean squared error over every element of the batch
    (batch x window x channels). The KL term is KL(q(z|x) || N(0, I)) of each sample, summed
    over the latent dimensions, then averaged over the samples of the batch.
    """
    mse = torch.mean((x - recon) ** 2)
    kl = torch.mean(-0.5 * torch.sum(1.0 + logvar - mu**2 - torch.exp(logvar), dim=1))
    return mse + beta * kl, mse


class Critic(nn.Module):
    """The VAE-GAN discriminator: real window or decoder output? (logit per window)."""

    def __init__(self, window: int, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(window * channels, hidden),
            nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One logit per window: high means real."""
        out: torch.Tensor = self.net(x)
        return out.squeeze(1)


def _adversarial_step(
    critic: Critic, critic_opt: torch.optim.Optimizer, x: torch.Tensor, recon: torch.Tensor
) -> torch.Tensor:
    """Update the critic on real vs reconstructed windows; return the decoder's GAN loss.

    The decoder is pushed to make reconstructions the critic takes for real windows, which
    sharpens them beyond what the MSE term alone gives (the VAE-GAN of Larsen et al., 2016,
    with the critic on the window itself rather than on a learned feature layer).
    """
    bce = nn.functional.binary_cross_entropy_with_logits
    real, fake = critic(x), critic(recon.detach())
    critic_loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
    critic_opt.zero_grad(set_to_none=True)
    torch.autograd.backward(critic_loss)
    critic_opt.step()
    fooled = critic(recon)
    return bce(fooled, torch.ones_like(fooled))


@dataclass(frozen=True)
class TrainResult:
    """The best model (by validation loss) and how the training went."""

    model: Vae
    epochs_run: int
    best_epoch: int
    val_loss: float
    history: list[tuple[int, float, float]]


def _val_loss(model: Vae, data: torch.Tensor, batch: int = 2048) -> float:
    """Mean squared reconstruction error through mu over a whole set of windows."""
    model.eval()
    total = 0.0
    with torch.no_grad():
        for start in range(0, data.shape[0], batch):
            x = data[start : start + batch]
            total += float(torch.sum((x - model(x)) ** 2))
    return total / float(data.numel())


def train_vae(
    train: Float32Array,
    val: Float32Array,
    config: TrainConfig,
    log: Log | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a VAE on scaled windows; stop early on validation loss and keep the best weights."""
    if train.ndim != 3 or train.shape[0] == 0:
        raise ExportError("no training windows: the train part is shorter than one window")
    if val.shape[0] == 0:
        raise ExportError("no validation windows: the validation part is shorter than one window")
    _, window, channels = train.shape
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(TRAIN_THREADS)
    torch.use_deterministic_algorithms(True)
    try:
        return _train(train, val, config, window, channels, log, progress)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def _train(
    train: Float32Array,
    val: Float32Array,
    config: TrainConfig,
    window: int,
    channels: int,
    log: Log | None,
    progress: Progress | None = None,
) -> TrainResult:
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = ENCODERS[config.encoder](window, channels, hidden=config.hidden, latent=config.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    critic = Critic(window, channels, config.hidden) if config.adversarial > 0 else None
    critic_opt = torch.optim.Adam(critic.parameters(), lr=config.lr) if critic else None
    x_train = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32))
    x_val = torch.from_numpy(np.ascontiguousarray(val, dtype=np.float32))
    n = x_train.shape[0]

    best_loss = math.inf
    best_epoch = 0
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    history: list[tuple[int, float, float]] = []
    stale = 0
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        running = 0.0
        for start in range(0, n, config.batch_size):
            x = x_train[order[start : start + config.batch_size]]
            mu, logvar = model.encode(x)
            noise = torch.randn(mu.shape, generator=generator)
            z = mu + noise * torch.exp(0.5 * logvar)
            recon = model.decode(z)
            loss, _ = vae_loss(x, recon, mu, logvar, config.beta)
            if critic is not None and critic_opt is not None:
                loss = loss + config.adversarial * _adversarial_step(critic, critic_opt, x, recon)
            optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimizer.step()
            running += loss.item() * x.shape[0]
        train_loss = running / n
        val_loss = _val_loss(model, x_val)
        history.append((epoch, train_loss, val_loss))
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        if progress is not None:
            progress(epoch, val_loss)
        if log is not None:
            mark = " *" if improved else ""
            log(
                f"epoch {epoch:3d}/{config.epochs}  train {train_loss:.5f}  "
                f"val {val_loss:.5f}{mark}"
            )
        if not math.isfinite(train_loss):
            raise ExportError(f"training diverged at epoch {epoch} (loss {train_loss})")
        if stale >= config.patience:
            if log is not None:
                log(
                    f"early stop after epoch {epoch}: no val improvement for "
                    f"{config.patience} epochs (best epoch {best_epoch}, val {best_loss:.5f})"
                )
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        epochs_run=epoch,
        best_epoch=best_epoch,
        val_loss=best_loss,
        history=history,
    )
