"""``python -m jupyter_cloudws.testing.server_main MODULE ARGS...``: how ``ServerProcess`` starts a
server: ``python -m MODULE ARGS...`` without ``rfc3987_syntax``.

Every Jupyter server imports jupyter_events, which imports jsonschema, whose format checkers import
``rfc3987_syntax`` when it is installed (``jsonschema[format-nongpl]``, which jupyter_events requires).
That module builds Earley parsers for the IRI grammar when it is imported: about 3 s of CPU, most of
a test server's start (``python -X importtime -c "import jupyter_server.serverapp"``). jsonschema treats it as optional: without it,
the ``iri`` and ``iri-reference`` formats go unchecked. The only schemas a server validates with a
format checker are jupyter_events' (the event metaschema and the event schemas of jupyter_server),
and none names those formats, so a test server checks exactly what it checked before.
"""

from __future__ import annotations

import runpy
import sys


def main() -> None:
    sys.modules["rfc3987_syntax"] = None  # type: ignore[assignment]  # importing it raises ImportError
    module, *rest = sys.argv[1:]
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
