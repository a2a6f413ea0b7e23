"""What the sync operations refuse with (400 at the API): kept apart so the API imports them without the clients."""


class NotSupported(ValueError):
    """The source or object cannot be listed (yet); a 400 for the operator, with the reason."""


class NotConfigured(ValueError):
    """The source's API credentials are missing."""
