"""Heavy libraries imported on a background thread, beside work that leaves the interpreter free.

Great Expectations, statsmodels and matplotlib each take one to three seconds to import. A stage that spends its
time in Polars or pyarrow threads (reading CSVs, counting panels) holds the interpreter lock little, so an import
started beside it costs the run almost nothing, where the same import at the first use is paid in full.
"""

import importlib
import sys
import threading


def import_in_background(*modules: str) -> threading.Thread | None:
    """Start importing the modules not imported yet, in order, on a daemon thread (returned; None when there is
    nothing to import). An import of the same module elsewhere waits for this one to finish."""
    missing = [name for name in modules if name not in sys.modules]
    if not missing:
        return None
    thread = threading.Thread(target=lambda: [importlib.import_module(name) for name in missing], daemon=True)
    thread.start()
    return thread
