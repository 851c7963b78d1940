"""Where the golden outputs of real fetchmail 6.4.37 live for the tests.

They are copied from ``shared/reference/samples/`` into ``tests/data/samples/``
so the suite is self-contained: a test that needs one never skips because the
shared folder is not beside the checkout.
"""

from pathlib import Path

__all__ = ["SAMPLES"]

SAMPLES = Path(__file__).resolve().parent / "data" / "samples"
