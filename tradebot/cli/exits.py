"""Exit codes (sysexits.h): systemd's unit restarts on 1 and never on 75 or 78."""

EX_OK = 0
EX_SOFTWARE = 1  # a broken invariant or an unexpected error: systemd restarts
EX_USAGE = 2
EX_DATAERR = 65  # malformed input data
EX_NOINPUT = 66  # a missing input file
# The state is held by another process (its lock): the unit does not restart, because systemd
# never starts a unit before its previous process is gone, so the holder is someone else.
EX_TEMPFAIL = 75
EX_CONFIG = 78  # bad config: the unit does not restart
