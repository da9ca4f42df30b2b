"""Worker processes that end with the process that started them.

The fitting workers come from a fork server, so they are not children of the process that uses them, and a
`kill -9` of that process left them (and the fork server) running, holding hundreds of megabytes each. Each worker
therefore watches its owner: a thread waits on a pidfd of the owner (Linux 5.3+; polling where there is none) and,
when the owner is gone, ends the fork server and the worker itself.
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time

POLL_SECONDS = 0.5  # where pidfds are not available


def watch_owner(owner: int) -> None:
    """Process-pool initializer: end this worker (and its fork server) when the process `owner` ends."""
    threading.Thread(target=_outlive_not, args=(owner, os.getppid()), name="owner-watch", daemon=True).start()


def _outlive_not(owner: int, server: int) -> None:
    try:
        descriptor = os.pidfd_open(owner)
    except ProcessLookupError:  # gone already
        descriptor = None
    except (AttributeError, OSError):
        while _exists(owner):
            time.sleep(POLL_SECONDS)
        descriptor = None
    if descriptor is not None:
        select.select([descriptor], [], [])  # readable once the owner has exited
    if server not in (owner, 1) and _exists(server):
        os.kill(server, signal.SIGKILL)  # the fork server serves the owner only; it would linger idle
    os._exit(1)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
