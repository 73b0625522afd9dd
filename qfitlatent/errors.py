"""The one exception the package raises for input a user can fix."""


class StructureError(ValueError):
    """A structure file that cannot be used, with a message a biologist understands.

    Raised for unreadable, empty, truncated or binary files, files with no usable protein,
    absurd coordinates, and anything else that is about the input rather than a bug.
    """


class DeviceError(RuntimeError):
    """A device was asked for that this machine does not have (e.g. --device cuda without CUDA)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into this version of the model."""
