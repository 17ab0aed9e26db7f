"""Interactive Brokers over the TWS API: the gateway worker (ib_async) and its loopback bridge.

``gateway`` and ``bridge`` import ib_async and run only in ``manage.py run_ib_gateway``;
``codec`` is plain Python and is shared with the adapter (``brokers.adapters.ibkr``).
"""
