"""The exceptions the package raises for what a user can fix or must be told, each with a
one-line message that says what is wrong with which file."""


class StructureError(ValueError):
    """A structure file that cannot be used, with a message a biologist understands.

    Raised for unreadable, empty, truncated or binary files, files with no usable protein,
    absurd coordinates, and anything else that is about the input rather than a bug.
    """


class MapError(StructureError):
    """A density map (MTZ, CCP4, MRC) that cannot be used with this model: unreadable or
    truncated, too large, no usable columns, or a cell that does not match the model's.

    A StructureError, so every caller that shows input problems to the user shows these too.
    """


class DeviceError(RuntimeError):
    """A device was asked for that this machine does not have (e.g. --device cuda without CUDA)."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded into this version of the model."""


class OutputError(RuntimeError):
    """Results that could not be made or written (a read-only or full disk, a folder that
    already holds results, a writer that failed), with a message that says where and why."""
