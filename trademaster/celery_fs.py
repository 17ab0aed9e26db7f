"""Kombu's filesystem transport, with messages written whole before anyone can read them.

The stock transport creates ``<name>.msg`` and then writes the JSON into it, so a worker polling
the folder can pick up the empty file in between and die on the decode ("Unrecoverable error:
JSONDecodeError", celery/kombu#1551); with beat sending every second it happened about once in a
dozen runs. Here a message is written to a hidden temporary name (which the reader's filter
skips) and renamed into place, which is atomic on one filesystem.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.partial")
        try:
            with open(partial, "wb") as f:
                f.write(dumps(payload).encode())
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
