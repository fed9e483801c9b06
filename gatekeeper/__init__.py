"""gatekeeper: decides, for every GitOps release, whether it may go out now.

The layout follows the picture in DESIGN.md: ``domain`` is the pure core (values, the window
index, ``decide``), ``calendar_sources`` expand iCalendar files, cron entries, public holidays
and business-day rules into intervals, ``calendar`` compiles a policy's sources into a window
index, ``configuration`` loads policy and calendar files, and ``cli`` is the command line.
"""

__version__ = "0.1.0"
