"""The one exception type for bad user input: caught at the entry point and shown as one line."""


class InputError(ValueError):
    """A configuration value or input file the pipeline cannot use; the message names it."""
