"""The MCP server of the trading agent: ``server`` (tools), ``auth`` (bearer tokens), ``asgi`` (mount)."""
