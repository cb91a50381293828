"""Journal MESSAGE_IDs of llmd's notable events: ``journalctl MESSAGE_ID=<id>`` finds them all.

A leaf module (no systemd import), so the scheduler, the runner handle or the bus can tag their
records without pulling in the journal: ``log.info("model loaded", extra={"MESSAGE_ID":
messages.MODEL_LOADED, "MODEL": name})``. The ids are fixed forever once shipped; a new event gets
a new id (``python3 -c 'import uuid; print(uuid.uuid4().hex)'``), an old one is never reused.
"""

from __future__ import annotations

MODEL_LOADED = "87a282c5f876421d8948a7ab10c9691b"
MODEL_UNLOADED = "51789c1c534a491f92ef63384400280b"
MODEL_EVICTED = "60f987b1d97c4dd9b0f6b1d31cc6f504"
RUNNER_CRASHED = "49144e543dfe4a989980bd39cb34e47f"
CONFIG_RELOADED = "daf62c5d3505409c9688cf9f8b12e98d"
READY = "da352f89d2884c57be27064719c8d52b"
STOPPING = "d22ec324f52d479199cee614d683bcdb"
REQUEST = "d791442ff76845ddbb0ce1b36d693480"
CONFIG_RELOAD_FAILED = "709dc25000da4234a685c259be182fd7"
# an API key missing, wrong, expired or without the scope a route needs
REQUEST_REFUSED = "a73badea29bd46f28c03a5c65e10eb99"

ALL: dict[str, str] = {
    name: value for name, value in globals().items() if name.isupper() and isinstance(value, str)
}
