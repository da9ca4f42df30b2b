"""Imported last by the fitting workers' fork server: moves everything imported so far out of the garbage collector's
reach (`gc.freeze`), as Python's documentation advises before forking workers."""

import gc

gc.freeze()
