"""QFitLatent: embeddings → L IPA blocks over fixed frames → von Mises mixture head and a
flexibility logit."""

from typing import NamedTuple

import torch
from torch import nn

from ..config import ModelConfig
from ..features import Features
from ..mixture import Mixture
from .embed import PairEmbedding, SingleEmbedding, neighbours
from .head import VonMisesMixtureHead
from .ipa import IPABlock
from .packing import packed_lists


class ModelOutput(NamedTuple):
    mixture: Mixture  # logits [N, K'], mu/kappa [N, K', D], fp32
    flex_logit: torch.Tensor | None  # [N] fp32 logit of p_flexible; None without a flex head


class QFitLatent(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.single = SingleEmbedding(cfg)
        self.pair = PairEmbedding(cfg)
        self.blocks = nn.ModuleList(IPABlock(cfg) for _ in range(cfg.n_blocks))
        # b_hij = Linear(z_ij) for every block at once: one pass over the [N, M, C_z] pair tensor
        # instead of one per block (the pair tensor dominates memory traffic on CPU).
        self.pair_bias = nn.Linear(cfg.d_z, cfg.n_blocks * cfg.n_heads)
        self.head = VonMisesMixtureHead(cfg)
        self.flex = nn.Linear(cfg.d_s, 1) if cfg.flex_head else None

    def trunk(self, feats: Features, lengths: list[int] | None = None) -> torch.Tensor:
        """Single representation [N, C_s] after the IPA blocks. `lengths`: feats packs several
        structures of these residue counts (model/packing.py), each attending only to itself."""
        rot, trans = feats.rot.float(), feats.trans.float()
        valid = None  # [N, M] real keys; None: every key of the list is real
        if lengths is None:
            # Centred: the model is translation-invariant anyway, and IPA's |q|² + |k|² − 2q·k
            # keeps more precision near the origin.
            trans = trans - trans.mean(0)
            nbr = neighbours(trans, self.cfg.max_neighbours)  # [N, M] or None (all pairs)
        else:
            trans, nbr, valid = packed_lists(trans, lengths, self.cfg.max_neighbours)
        # bf16 on CUDA for the matmuls; point geometry and the head stay fp32 (see ipa.py).
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=trans.is_cuda):
            s = self.single(feats)  # [N, C_s]
            z = self.pair(feats, nbr)  # [N, M, C_z]
            # [N, L*H, M]: keys last, so a block adds its bias to the logits in one contiguous pass.
            biases = self.pair_bias(z).transpose(1, 2)  # [N, L*H, M]
            if valid is not None:  # padding of a packed batch: out of every softmax
                biases = biases.masked_fill(~valid[:, None, :], float("-inf"))
            biases = biases.contiguous().chunk(len(self.blocks), dim=1)
            for block, bias in zip(self.blocks, biases, strict=True):
                s = block(s, z, bias, rot, trans, nbr)
        return s

    def forward(self, feats: Features, lengths: list[int] | None = None) -> ModelOutput:
        """Per-residue mixture (K' = K, or K + prior_components with the rotamer-library prior,
        model/prior.py) and the flexibility logit (fp32, like the mixture). `lengths`: see
        `trunk` (packing.forward_many is the way to call it)."""
        s = self.trunk(feats, lengths)
        flex = None
        if self.flex is not None:
            with torch.autocast(device_type=s.device.type, enabled=False):
                flex = self.flex(s.float()).squeeze(-1)  # [N]
        return ModelOutput(self.head(s, feats), flex)
