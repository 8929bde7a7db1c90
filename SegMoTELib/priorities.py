"""The one order in which SegMoTE's work is served, the Slicer glue and the engine server alike.

Lower runs first. A prompt a user waits for beats everything; embedding the slice a user is about
to prompt comes next (it is short, and it is what makes the next prompt fast); propagation and
curation come last: the user watches a progress dialog, and a propagation on the server yields to
the calls queued while it runs (see `service/device_queue.py`).
"""

INTERACTIVE = 0  # a prompt the user is waiting for
PREFETCH = 1     # embedding a slice ahead of a prompt
BATCH = 2        # a propagation, a 3D box, curation metrics

PRIORITIES = (INTERACTIVE, PREFETCH, BATCH)
