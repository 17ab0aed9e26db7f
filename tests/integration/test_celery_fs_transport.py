"""The filesystem queue writes each message whole: a reader never meets a half-written file."""

from __future__ import annotations

import json
from pathlib import Path
from queue import Empty

import pytest
from kombu import Connection

from trademaster.celery_fs import Transport


def connection(folder: Path) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    return Connection("filesystem://", transport=Transport, transport_options=options)


def test_a_message_appears_only_complete_and_a_partial_file_is_never_read(tmp_path):
    with connection(tmp_path) as conn:
        channel = conn.default_channel
        channel._put("celery", {"body": "x" * 10000})
        names = sorted(p.name for p in tmp_path.iterdir())
        assert len(names) == 1 and names[0].endswith(".celery.msg")
        assert json.loads((tmp_path / names[0]).read_text())["body"] == "x" * 10000
        # what a writer leaves while it writes: skipped by the reader, not decoded
        (tmp_path / ".123_abc.celery.msg.partial").write_text("")
        assert channel._get("celery")["body"] == "x" * 10000
        with pytest.raises(Empty):
            channel._get("celery")
