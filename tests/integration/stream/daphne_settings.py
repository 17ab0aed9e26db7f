"""Settings of the daphne and relay subprocesses of ``test_daphne``: production settings (the
``DATABASE_URL`` / ``REDIS_URL`` switches) with a channel-layer prefix of the test's own, because
Redis pub/sub channels are shared by every database number and other runs may use the same ids."""

import os

from trademaster.settings import *  # noqa: F403
from trademaster.settings import CHANNEL_LAYERS

CHANNEL_LAYERS["default"].setdefault("CONFIG", {})["prefix"] = os.environ["TM_STREAM_CHANNEL_PREFIX"]
