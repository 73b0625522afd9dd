"""qfitlatent: which side chains move, and how.

An SE(3)-invariant IPA network reads backbone frames and sequence and predicts, per residue, a von
Mises mixture over χ1…χ4, trained on multiconformer crystal structures.
"""

__version__ = "0.1.0"
