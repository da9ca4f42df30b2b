"""Heavy libraries imported on a background thread, beside work that leaves the interpreter free.

Great Expectations, statsmodels and matplotlib each take one to three seconds to import. A stage that spends its
time in Polars or pyarrow threads (reading CSVs, counting panels) holds the interpreter lock little, so an import
started beside it costs the run almost nothing, where the same import at the first use is paid in full.

Two threads importing parts of one package at once can deadlock on Python's per-module import locks; Python breaks
the deadlock by handing one thread a partially initialised module, and that thread fails with `AttributeError:
partially initialized module 'sqlalchemy.orm.exc'`. So a background import never races another thread for a
package: the packages it shares with code that may run beside it are imported on the calling thread first
(`shared`), and the code that needs the modules waits for the background import to finish (`wait_for_import`)
instead of importing them at the same time.
"""

import importlib
import sys
import threading

_importing: dict[str, threading.Event] = {}  # modules a background thread is importing: set once each is done


def import_in_background(*modules: str, shared: tuple[str, ...] = ()) -> threading.Thread | None:
    """Start importing the modules not imported yet, in order, on a daemon thread (returned; None when there is
    nothing to import), after importing the `shared` ones here, on the calling thread."""
    for name in shared:
        importlib.import_module(name)
    missing = [name for name in modules if name not in sys.modules and name not in _importing]
    if not missing:
        return None
    done = {name: threading.Event() for name in missing}
    _importing.update(done)

    def run() -> None:
        for name in missing:
            try:
                importlib.import_module(name)
            except Exception:  # whoever needs the module imports it again and meets the error there
                pass
            finally:
                done[name].set()

    thread = threading.Thread(target=run, name="background-imports", daemon=True)
    thread.start()
    return thread


def wait_for_import(name: str) -> None:
    """Before importing `name`: wait for a background import of it to finish, rather than import it beside it."""
    started = _importing.get(name)
    if started is not None:
        started.wait()
        _importing.pop(name, None)
