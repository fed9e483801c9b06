"""Readers: adapters that fetch what gatekeeper reads from systems it does not own, one module per
system (``calendar_feeds``: published iCalendar URLs over HTTP). They return bytes and metadata,
raise only their own error type, and know nothing of the service or the API."""
