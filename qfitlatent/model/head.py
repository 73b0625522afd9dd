"""Output head (SPEC §4): single representation → von Mises mixture over χ1…χ4."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..mixture import Mixture


class VonMisesMixtureHead(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.k, self.d, self.kappa_min = cfg.n_components, cfg.n_chi, cfg.kappa_min
        self.logits = nn.Linear(cfg.d_s, self.k)
        self.mu = nn.Linear(cfg.d_s, self.k * self.d)
        self.kappa = nn.Linear(cfg.d_s, self.k * self.d)
        # Spread the initial means over the circle so components do not start identical.
        with torch.no_grad():
            self.mu.bias.copy_(torch.linspace(-1.5, 1.5, self.k).repeat_interleave(self.d))

    def forward(self, s: torch.Tensor) -> Mixture:
        """s [N, C_s] → Mixture(logits [N, K], mu [N, K, D], kappa [N, K, D]), in fp32."""
        n = s.shape[0]
        # fp32 even inside an autocast region: κ up to 1e4 and the loss need the precision.
        with torch.autocast(device_type=s.device.type, enabled=False):
            s = s.float()
            mu = math.pi * torch.tanh(self.mu(s)).view(n, self.k, self.d)  # (−π, π)
            kappa = F.softplus(self.kappa(s)).view(n, self.k, self.d) + self.kappa_min
            return Mixture(self.logits(s), mu, kappa)
