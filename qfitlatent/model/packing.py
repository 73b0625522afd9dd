"""Several structures in one forward pass: packed along the residue axis, attending only within
their own structure.

The network sees residues only through per-query key lists (model/ipa.py), so a packed batch
gives each structure what its own forward pass gives, provided three things are kept per
structure: the centring of the CA positions (network.trunk subtracts the mean), the neighbour
lists (computed on the structure's own residues, then offset to its rows) and attention over all
of a structure's residues where it has no more than `max_neighbours` of them (padded to the
batch's list width, the padding masked out of the softmax). Relative positions and "same chain"
are compared only between a query and its own keys, which never leave the structure; the head,
the prior and the flexibility logit are per residue. What differs is the order of float sums
alone: a structure of at most `max_neighbours` residues is summed over a gathered list instead
of a dense matmul, and the matrix kernels may block a longer matrix differently. Outputs agree
to float rounding (tests/test_batched_forward.py; with the shipped weights a 231-residue
structure came out bit-identical, a 163-residue one within 2.4e-7, and 46-residue ones within
3.4e-6 in logits and means, 1.2e-4 in concentrations κ, which run to hundreds).
"""

from dataclasses import fields

import torch

from ..features import Features
from .embed import neighbours


def pack(batch: list[Features]) -> Features:
    """One Features of every residue of `batch`, in order: tensors concatenated (the altloc axis
    padded to the widest structure with zero occupancy and no χ, which the network does not
    read), residue identities concatenated, the name of the first."""
    a_max = max(f.chi.shape[1] for f in batch)
    kw = {}
    for field in fields(Features):
        values = [getattr(f, field.name) for f in batch]
        if torch.is_tensor(values[0]):
            if field.name in ("chi", "chi_mask", "occ"):  # [N, A, ...]: A differs per structure
                values = [_pad_altlocs(v, a_max) for v in values]
            kw[field.name] = torch.cat(values)
        elif isinstance(values[0], list):
            kw[field.name] = [x for v in values for x in v]
        else:
            kw[field.name] = values[0]
    return Features(**kw)


def _pad_altlocs(x: torch.Tensor, a_max: int) -> torch.Tensor:
    """[N, A, ...] → [N, a_max, ...], zeros (False) in the new slots."""
    pad = x.new_zeros(x.shape[0], a_max - x.shape[1], *x.shape[2:])
    return torch.cat([x, pad], dim=1)


def packed_lists(
    trans: torch.Tensor, lengths: list[int], max_neighbours: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-structure centring and key lists of a packed batch.

    trans [N, 3] Å, the CA positions of structures of `lengths` residues one after another.
    Returns the centred positions [N, 3] (each structure about its own mean, as a forward pass
    of that structure alone centres it), key indices [N, W] into the packed rows and a mask
    [N, W] of the real keys. W is `max_neighbours`, or the longest structure where that is 0
    (all pairs) or larger. A structure with more residues than `max_neighbours` gets the k
    nearest of its own residues (embed.neighbours, as alone); one with fewer attends to all of
    them, padded with its first row, masked.
    """
    width = max(lengths) if max_neighbours <= 0 else min(max_neighbours, max(lengths))
    centred, nbr, valid = [], [], []
    start = 0
    for n in lengths:
        t = trans[start : start + n]
        t = t - t.mean(0)  # the same operation a forward pass of this structure alone does
        rows = neighbours(t, max_neighbours)  # [n, M], or None: all n residues
        if rows is None:
            rows = torch.arange(n, device=trans.device).expand(n, n)
        pad = width - rows.shape[1]
        mask = torch.ones(n, width, dtype=torch.bool, device=trans.device)
        mask[:, rows.shape[1] :] = False
        rows = torch.cat([rows, rows.new_zeros(n, pad)], dim=1)  # padding: row 0, masked
        centred.append(t)
        nbr.append(rows + start)
        valid.append(mask)
        start += n
    return torch.cat(centred), torch.cat(nbr), torch.cat(valid)


def unpack(out, lengths: list[int]) -> list:
    """A packed ModelOutput as one ModelOutput per structure (views of the packed tensors)."""
    mixtures = zip(*(t.split(lengths) for t in out.mixture), strict=True)
    flex = out.flex_logit.split(lengths) if out.flex_logit is not None else [None] * len(lengths)
    return [type(out)(type(out.mixture)(*m), f) for m, f in zip(mixtures, flex, strict=True)]


def forward_many(model, batch: list[Features], device) -> list:
    """One ModelOutput per structure of `batch`, from one forward pass on `device`. A batch of
    one is the model's own call on that structure, unchanged."""
    if len(batch) == 1:
        return [model(batch[0].to(device))]
    lengths = [f.n_res for f in batch]
    return unpack(model(pack(batch).to(device), lengths), lengths)
