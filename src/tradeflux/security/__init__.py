"""Who may do what: bearer tokens and scopes at the HTTP edges, and their browser hardening.

``tokens`` verifies a bearer token (a JWT against a JWKS, or a static API token from a
file) into a :class:`~tradeflux.security.tokens.Principal` with scopes; ``http`` is the
ASGI middleware every HTTP edge runs behind (Host, Origin, scopes, security headers);
``policy`` builds both from the settings and refuses an unsafe combination at start;
``acls`` derives each Kafka principal's least-privilege ACLs from the topic registry.
"""

from tradeflux.errors import ConfigError, TradefluxError


class SecurityError(TradefluxError):
    """A security control cannot be set up as configured."""


class SecurityConfigError(SecurityError, ConfigError):
    """The security settings are incomplete or unsafe; the message says which and the fix."""

    exit_code = 2
