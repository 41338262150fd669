"""Process entry points: the `autobidder` command (`cli`), the stack launcher (`stack`), the
demo driver (`demo`), and the Temporal, queue, exchange and fleet processes.

The top of the import graph. May import: every package; nothing imports it. Public names:
`__all__`.
"""

from __future__ import annotations

__all__ = []
