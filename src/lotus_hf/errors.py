"""The errors lotus-hf raises for input a user must fix. Each message names the argument, the value received and
the fix; the `lotus-hf` command prints it without a traceback. All are `ValueError`s, as a bad argument is."""


class LotusError(ValueError):
    """An input the user must fix; the message says how."""


class ArgumentError(LotusError):
    """An argument, option or config value the user must fix."""


class DataError(LotusError):
    """A data set or forget request the user must fix."""


class ModelError(LotusError):
    """A model the user must fix or name differently."""


class OutputError(LotusError):
    """An output folder or file that cannot be used."""


class HubError(LotusError):
    """A Hub operation the user can fix (token, repo id, permissions)."""
