"""The one exception type the local stack raises for problems a user can fix.

The CLI prints it as a single line (no traceback), so every message must name the problem *and* the fix.
"""


class StackError(RuntimeError):
    """A failure of the local stack that the user can act on; its message is the whole user-facing text."""
