"""The pure core: domain values, the window index and ``decide``.

Nothing here does I/O, reads a clock or the environment, or imports a framework (checked by
import-linter in ``make lint``). Time is always passed in.
"""
