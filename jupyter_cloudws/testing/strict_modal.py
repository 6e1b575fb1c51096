"""``python -m jupyter_cloudws.testing.strict_modal MODULE ARGS...``: run ``python -m MODULE ARGS...``
with a blocking Modal call inside a running event loop turned into an error.

Python's ``-W`` and ``PYTHONWARNINGS`` cannot name ``modal.exception.AsyncUsageWarning``: they are
read before ``modal`` can be imported, and dropped. So the filter is installed here, in code.
"""

from __future__ import annotations

import runpy
import sys
import warnings


def main() -> None:
    from modal.exception import AsyncUsageWarning

    warnings.filterwarnings("error", category=AsyncUsageWarning)
    module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
