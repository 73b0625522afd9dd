"""The network: IPA encoder over fixed backbone frames and a von Mises mixture head."""

from .network import ModelOutput, QFitLatent

__all__ = ["ModelOutput", "QFitLatent"]
