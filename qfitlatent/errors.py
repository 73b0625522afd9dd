"""The exceptions the package raises for what a user can fix or must be told, each with a
one-line message that says what is wrong with which file."""


class StructureError(ValueError):
    """A structure file that cannot be used, with a message a biologist understands.

    Raised for unreadable, empty, truncated or binary files, files with no usable protein,
    absurd coordinates, and anything else that is about the input rather than a bug.
    """


class DeviceError(RuntimeError):
    """A device was asked for that this machine does not have (e.g. --device cuda without CUDA)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into this version of the model."""


class OutputError(RuntimeError):
    """Results that could not be made or written (a read-only or full disk, a folder that
    already holds results, a writer that failed), with a message that says where and why."""
