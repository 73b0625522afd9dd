"""A backbone-dependent rotamer library inside the head: the network refines it per residue.

With `prior_components` = M > 0 the output mixture has K + M components: the head's K free
components, and the M components of a backbone-dependent library (per amino acid, weights per
φ/ψ bin; `library.BackboneDependentMixture`) fitted on the training split and stored as
buffers, so it travels inside every checkpoint. The network moves the library's weights
(rotamer populations given the environment) and scales its concentrations (how far a side chain
wanders around each rotamer), per residue. Both corrections start at zero, so an untrained
network predicts the library itself and training only has to learn what the environment adds.

Everything here depends on the amino acid and φ/ψ only, so the model stays SE(3)-invariant.
"""

import torch
from torch import nn

from ..config import ModelConfig
from ..features import Features
from ..library import backbone_dependent_logits
from ..mixture import Mixture
from ..residues import N_TOKENS

# Bound on the learned log-scale of the library's κ: e^±3 is ×0.05…×20.
MAX_LOG_KAPPA_SCALE = 3.0


class RotamerLibraryPrior(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        m, d = cfg.prior_components, cfg.n_chi
        self.bin_deg, self.kappa_min = cfg.prior_bin_deg, cfg.kappa_min
        n_bins2 = round(360.0 / self.bin_deg) ** 2
        # Until `load_library` fills them: equal weights, uniform components (κ = κ_min).
        self.register_buffer("bin_logits", torch.zeros(N_TOKENS, n_bins2, m))  # [21, B², M]
        self.register_buffer("aa_logits", torch.zeros(N_TOKENS, m))  # [21, M], no φ/ψ
        self.register_buffer("mu", torch.zeros(N_TOKENS, m, d))  # [21, M, D]
        self.register_buffer("kappa", torch.full((N_TOKENS, m, d), cfg.kappa_min))  # [21, M, D]
        self.reweight = nn.Linear(cfg.d_s, m)
        self.kappa_scale = nn.Linear(cfg.d_s, d)
        for layer in (self.reweight, self.kappa_scale):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @torch.no_grad()
    def load_library(self, library) -> None:
        """Copy a fitted `library.BackboneDependentMixture` (same M and bin width) in."""
        if library.bin_deg != self.bin_deg or library.bin_logits.shape != self.bin_logits.shape:
            raise ValueError(
                f"library has {tuple(library.bin_logits.shape)} bins×components at "
                f"{library.bin_deg}°; this model expects {tuple(self.bin_logits.shape)} at "
                f"{self.bin_deg}°"
            )
        table = library.per_aa.table
        self.bin_logits.copy_(library.bin_logits)
        self.aa_logits.copy_(torch.log_softmax(table.logits.float(), -1))
        self.mu.copy_(table.mu)
        self.kappa.copy_(table.kappa)

    def library(self, feats: Features) -> Mixture:
        """The library's own mixture per residue: logits [N, M], mu/kappa [N, M, D]."""
        aa = feats.aatype
        logits = backbone_dependent_logits(
            self.bin_logits, self.aa_logits[aa], feats, self.bin_deg
        )  # [N, M]
        return Mixture(logits, self.mu[aa], self.kappa[aa])

    def forward(self, s: torch.Tensor, feats: Features) -> Mixture:
        """Library components refined by s [N, C_s] (fp32): logits [N, M], mu/kappa [N, M, D]."""
        lib = self.library(feats)
        logits = lib.logits + self.reweight(s)
        log_scale = MAX_LOG_KAPPA_SCALE * torch.tanh(self.kappa_scale(s) / MAX_LOG_KAPPA_SCALE)
        kappa = (lib.kappa * log_scale.exp()[:, None, :]).clamp_min(self.kappa_min)  # [N, M, D]
        return Mixture(logits, lib.mu, kappa)
