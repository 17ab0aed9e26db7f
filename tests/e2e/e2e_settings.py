"""The service's own settings for the browser tests' live server, with two changes:

* the collected static files go to the run's own folder, so parallel workers (and parallel runs)
  never write into one ``staticfiles/``;
* a fast password hasher: every test logs in through the form, and the production hasher is
  deliberately slow.
"""

import os
from pathlib import Path

from trademaster.settings import *  # noqa: F403

STATIC_ROOT = Path(os.environ["TM_E2E_STATIC_ROOT"])
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
