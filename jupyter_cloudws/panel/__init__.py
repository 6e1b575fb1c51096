"""The JupyterLab panel's server side: the notebook chat's controller, run in the server, one per
open panel, behind the WebSocket ``{base_url}cloudws/api/panel`` (see ``protocol.py``)."""
