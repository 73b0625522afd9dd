"""Which server folders a visitor may name as training data: only those under the operator's
allowed roots (server_config.data_roots), judged after every symlink is resolved.

Every refusal for a path outside the roots reads the same whether or not the path exists, is a
file, or is unreadable, so the Train page cannot be used to probe the server's file system.
"""

import os
from pathlib import Path


class FolderError(ValueError):
    """A training folder that may not be used; safe to show to any visitor."""


def resolve_data_folder(text: str, roots: tuple[Path, ...]) -> Path:
    """The real path of folder `text` if it lies under one of `roots` (already resolved).

    A relative `text` is taken relative to the first root. Raises FolderError otherwise.
    """
    if not roots:
        raise FolderError(
            "training on folders of this server is turned off; upload structures instead "
            "(an operator can allow folders, see docs/deploy.md)"
        )
    text = str(text).strip()
    allowed = ", ".join(str(r) for r in roots)
    outside = FolderError(f"{text!r} is not a folder under the allowed folders ({allowed})")
    if not text or "\x00" in text:
        raise outside
    path = Path(text)
    if not path.is_absolute():
        path = roots[0] / path
    real = Path(os.path.realpath(path))  # follows every symlink, also one pointing outside
    root = next((r for r in roots if real == r or real.is_relative_to(r)), None)
    if root is None:
        raise outside
    if not real.is_dir():
        raise FolderError(f"there is no folder {text!r} under {root}")
    return real
