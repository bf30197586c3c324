"""One error root for swc-rs, with typed subclasses.

Only the CLI turns these into exit codes and messages. Every error that reports bad
input carries the offending file, the problem and the fix, so that the message a user
sees is always "<file>: <problem>. <fix>".
"""

from __future__ import annotations


class SwcError(Exception):
    """Root of every error raised on purpose by swc-rs."""

    exit_code = 1

    def __init__(self, problem: str, *, path: object = None, fix: str | None = None):
        self.problem = problem
        self.path = None if path is None else str(path)
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        text = text.rstrip(".") + "."
        if self.fix:
            text += f" Fix: {self.fix.rstrip('.')}."
        return text


class InputError(SwcError, ValueError):
    """Bad input from the user: a file, a layer, an option value (exit code 2)."""

    exit_code = 2


class InputFileError(InputError, OSError):
    """An input file is missing, unreadable or not of the expected kind."""


class RasterInputError(InputError):
    """A raster cannot be used: no CRS, no overlap, too few bands ..."""


class VectorInputError(InputError):
    """A vector layer cannot be used: missing fields, no CRS, bad geometry ..."""


class ConfigError(InputError):
    """A configuration file or value is invalid."""


class OutputExistsError(InputError, FileExistsError):
    """The output exists and --overwrite was not given."""


class ModelError(InputError):
    """A model file is missing, of an unknown type, or has been tampered with."""


class VerificationError(InputError):
    """Field-verification results hold values outside DOMAIN.md or unknown ids."""


class SwcWarning(UserWarning):
    """Base class of the warnings swc-rs emits about the data it was given."""


class EmptyLayerWarning(SwcWarning):
    """A layer has no features (e.g. no approved projects)."""


class RepairedGeometryWarning(SwcWarning):
    """An invalid geometry was repaired; the warning names the feature."""
