"""Output head (SPEC §4): single representation → von Mises mixture over χ1…χ4."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..features import Features
from ..mixture import Mixture
from .prior import RotamerLibraryPrior

# With a library prior, the free components start with this share of the mass: the untrained
# model is then close to the library rather than to K random components.
FREE_SHARE_AT_INIT = 0.1


class VonMisesMixtureHead(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.k, self.d, self.kappa_min = cfg.n_components, cfg.n_chi, cfg.kappa_min
        self.logits = nn.Linear(cfg.d_s, self.k)
        self.mu = nn.Linear(cfg.d_s, self.k * self.d)
        self.kappa = nn.Linear(cfg.d_s, self.k * self.d)
        self.prior = RotamerLibraryPrior(cfg) if cfg.prior_components > 0 else None
        with torch.no_grad():
            # Spread the initial means over the circle so components do not start identical.
            self.mu.bias.copy_(torch.linspace(-1.5, 1.5, self.k).repeat_interleave(self.d))
            if self.prior is not None:
                # Library logits are log-weights summing to 1; each free one starts at share/K.
                self.logits.bias.fill_(math.log(FREE_SHARE_AT_INIT / self.k))

    def forward(self, s: torch.Tensor, feats: Features | None = None) -> Mixture:
        """s [N, C_s] → Mixture(logits [N, K'], mu [N, K', D], kappa [N, K', D]), in fp32.

        K' = K, or K + M with a library prior (which needs `feats` for amino acids and φ/ψ).
        """
        n = s.shape[0]
        # fp32 even inside an autocast region: κ up to 1e4 and the loss need the precision.
        with torch.autocast(device_type=s.device.type, enabled=False):
            s = s.float()
            mu = math.pi * torch.tanh(self.mu(s)).view(n, self.k, self.d)  # (−π, π)
            kappa = F.softplus(self.kappa(s)).view(n, self.k, self.d) + self.kappa_min
            free = Mixture(self.logits(s), mu, kappa)
            if self.prior is None:
                return free
            if feats is None:
                raise ValueError("a head with a rotamer-library prior needs the residue features")
            lib = self.prior(s, feats)
            return Mixture(*(torch.cat(pair, dim=1) for pair in zip(free, lib, strict=True)))
