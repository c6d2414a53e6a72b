"""The `[opcua]` section of a site config: the local SCADA server, its security and users.

```toml
[opcua]
endpoint = "opc.tcp://0.0.0.0:4840/lineside"   # the port lives in the URL (or `port = ...`)
namespace = "urn:lineside"
security = "secure"          # secure | secure+none | none (none: lab/loopback only, explicit)
security_policies = ["Basic256Sha256", "Aes256_Sha256_RsaPss"]
security_modes = ["Sign", "SignAndEncrypt"]
allow_anonymous = false      # true: anonymous clients get the viewer role
pki_dir = "/var/lib/lineside/opcua-pki"   # own/ (certificate, key), trusted/, rejected/

[[opcua.user]]
name = "scada"
role = "viewer"              # viewer: read, browse, subscribe; operator: also acknowledge
password_hash = "scrypt$n=16384,r=8,p=1$..."   # from `lineside hash-password`

[opcua.limits]               # so a flood of clients cannot starve the detection loop
max_connections = 16
max_sessions = 8
max_subscriptions = 16       # all sessions together ...
max_subscriptions_per_session = 4        # ... and one session
max_monitored_items_per_session = 5000
max_queue_size = 10          # values kept per monitored item for a slow client
handshake_timeout_s = 3.0    # from connect to an activated session, or the socket is closed
max_connections_per_address = 4   # connections one address may hold without a trusted cert
reserved_for_trusted = 4     # connection and session slots only a trusted certificate may take
lockout_after = 5            # bad passwords in a row, per user and client certificate, ...
lockout_s = 300.0            # ... lock that pair for this long
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from agent.config.passwords import FORMAT_HINT, PasswordHash, parse_hash
from agent.config.reader import Section, field_names

SERVER_POLICIES = ("Basic256Sha256", "Aes256_Sha256_RsaPss", "Aes128_Sha256_RsaOaep")
SERVER_MODES = ("Sign", "SignAndEncrypt")
SECURITY_CHOICES = ("secure", "secure+none", "none")
ROLES = ("viewer", "operator")
DEFAULT_POLICIES = ("Basic256Sha256", "Aes256_Sha256_RsaPss")
DEFAULT_MODES = ("Sign", "SignAndEncrypt")
DEFAULT_ENDPOINT = "opc.tcp://0.0.0.0:4840/lineside"


@dataclass(frozen=True)
class ScadaUser:
    """A SCADA user: name, role and the salted hash of the password."""

    name: str
    role: str
    password: PasswordHash = field(repr=False)


@dataclass(frozen=True)
class ScadaLimits:
    """Caps on what clients may hold, so they cannot starve the detection loop."""

    max_connections: int = 16
    max_sessions: int = 8
    max_subscriptions: int = 16
    max_subscriptions_per_session: int = 4
    max_monitored_items_per_session: int = 5000
    max_queue_size: int = 10
    handshake_timeout_s: float = 3.0
    max_connections_per_address: int = 4
    reserved_for_trusted: int = 4
    lockout_after: int = 5
    lockout_s: float = 300.0


@dataclass(frozen=True)
class OpcUaConfig:
    """The local OPC-UA server for SCADA."""

    endpoint: str = DEFAULT_ENDPOINT
    namespace: str = "urn:lineside"
    security: str = "secure"
    security_policies: tuple[str, ...] = DEFAULT_POLICIES
    security_modes: tuple[str, ...] = DEFAULT_MODES
    allow_anonymous: bool = False
    users: tuple[ScadaUser, ...] = ()
    pki_dir: Path = Path("opcua-pki")
    certificate: Path | None = None
    private_key: Path | None = None
    trusted_dir: Path | None = None
    rejected_dir: Path | None = None
    limits: ScadaLimits = ScadaLimits()

    @property
    def certificate_path(self) -> Path:
        """The server certificate (DER); generated on first start if absent."""
        return self.certificate or self.pki_dir / "own" / "server-cert.der"

    @property
    def private_key_path(self) -> Path:
        """The server's private key (PEM, mode 0600); generated on first start if absent."""
        return self.private_key or self.pki_dir / "own" / "server-key.pem"

    @property
    def trusted_path(self) -> Path:
        """Client certificates (or their CAs) accepted on secure endpoints."""
        return self.trusted_dir or self.pki_dir / "trusted"

    @property
    def rejected_path(self) -> Path:
        """Where refused client certificates are kept for review."""
        return self.rejected_dir or self.pki_dir / "rejected"

    @property
    def serves_secure(self) -> bool:
        """True when signed/encrypted endpoints are offered."""
        return self.security != "none"

    @property
    def serves_none(self) -> bool:
        """True when the unencrypted, unsigned endpoint is offered (explicit only)."""
        return self.security != "secure"


#: `[opcua]`: OpcUaConfig's fields, its users as `[[opcua.user]]`, and `port` (the endpoint's).
_KEYS = (field_names(OpcUaConfig) - {"users"}) | {"user", "port"}
_LIMIT_KEYS = field_names(ScadaLimits)


def _names(
    s: Section, key: str, allowed: tuple[str, ...], default: tuple[str, ...]
) -> tuple[str, ...]:
    if not s.has(key):
        return default
    values = s.get(key, list)
    if not values or not all(isinstance(v, str) for v in values):
        raise s.error(key, "must be a non-empty list of names", f"e.g. {list(default)}")
    for v in values:
        if v not in allowed:
            raise s.error(key, f"{v!r} is not one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(values))


def _endpoint(s: Section) -> str:
    url = s.get("endpoint", str, DEFAULT_ENDPOINT)
    fix = f'write opc.tcp://<host>:<port>/<path>, e.g. "{DEFAULT_ENDPOINT}"'
    parts = urlsplit(url)
    if parts.scheme != "opc.tcp" or not parts.hostname:
        raise s.error("endpoint", f"{url!r} is not an opc.tcp:// URL with a host", fix)
    try:
        url_port = parts.port
    except ValueError:
        raise s.error("endpoint", f"{url!r} has a port outside 1..65535", fix) from None
    if s.has("port"):
        port = s.within("port", 1, 65535)
        if url_port is not None and url_port != port:
            raise s.error(
                "port", f"{port} differs from the port {url_port} in endpoint",
                "give the port once: in endpoint or as port",
            )  # fmt: skip
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        url = parts._replace(netloc=f"{host}:{port}").geturl()
    elif url_port is None:
        raise s.error("endpoint", f"{url!r} has no port", "add :4840 (or set port)")
    return url


def _users(s: Section) -> tuple[ScadaUser, ...]:
    users: list[ScadaUser] = []
    seen: set[str] = set()
    for u in s.tables("user", required=False):
        u.reject_unknown({"name", "role", "password_hash"})
        name = u.get("name", str)
        if not name or any(c.isspace() for c in name) or len(name) > 64:
            raise u.error("name", f"{name!r} is not a user name", "1..64 characters, no spaces")
        if name in seen:
            raise u.error("name", f"user {name!r} is listed twice",
                          "give each user one [[opcua.user]] table")  # fmt: skip
        seen.add(name)
        role = u.choice("role", ROLES, fix="viewer (read, browse, subscribe) or operator (+ ack)")
        text = u.get("password_hash", str, fix=f"run `lineside hash-password`: {FORMAT_HINT}")
        try:
            parsed = parse_hash(text)
        except ValueError as exc:
            raise u.error("password_hash", str(exc), f"expected {FORMAT_HINT}") from None
        users.append(ScadaUser(name, role, parsed))
    return tuple(users)


def _handshake_timeout(lim: Section, default: float) -> float:
    value = lim.positive("handshake_timeout_s", float, default)
    if not 0.5 <= value <= 60.0:
        raise lim.error(
            "handshake_timeout_s", f"{value} is outside 0.5..60 s",
            "a real client connects and logs in within a second; 3 s is the default",
        )  # fmt: skip
    return value


def _limits(s: Section) -> ScadaLimits:
    lim = s.table("limits", required=False)
    lim.reject_unknown(_LIMIT_KEYS)
    d = ScadaLimits()
    limits = ScadaLimits(
        max_connections=lim.within("max_connections", 1, 1000, d.max_connections),
        max_sessions=lim.within("max_sessions", 1, 1000, d.max_sessions),
        max_subscriptions=lim.within("max_subscriptions", 1, 1000, d.max_subscriptions),
        max_subscriptions_per_session=lim.within(
            "max_subscriptions_per_session", 1, 1000, d.max_subscriptions_per_session
        ),
        max_monitored_items_per_session=lim.within(
            "max_monitored_items_per_session", 1, 1_000_000, d.max_monitored_items_per_session
        ),
        max_queue_size=lim.within("max_queue_size", 1, 10_000, d.max_queue_size),
        handshake_timeout_s=_handshake_timeout(lim, d.handshake_timeout_s),
        max_connections_per_address=lim.within(
            "max_connections_per_address", 1, 1000, d.max_connections_per_address
        ),
        reserved_for_trusted=lim.within("reserved_for_trusted", 0, 999, d.reserved_for_trusted),
        lockout_after=lim.within("lockout_after", 1, 100, d.lockout_after),
        lockout_s=lim.positive("lockout_s", float, d.lockout_s),
    )
    if limits.max_sessions > limits.max_connections:
        raise lim.error(
            "max_sessions", f"{limits.max_sessions} exceeds max_connections "
            f"{limits.max_connections}", "each session needs a connection: raise max_connections",
        )  # fmt: skip
    if limits.max_subscriptions_per_session > limits.max_subscriptions:
        raise lim.error(
            "max_subscriptions_per_session", f"{limits.max_subscriptions_per_session} exceeds "
            f"max_subscriptions {limits.max_subscriptions}",
            "lower it, or raise max_subscriptions (all sessions together)",
        )  # fmt: skip
    if limits.reserved_for_trusted >= limits.max_sessions:
        raise lim.error(
            "reserved_for_trusted", f"{limits.reserved_for_trusted} leaves none of max_sessions "
            f"{limits.max_sessions} to anyone else", "keep it below max_sessions",
        )  # fmt: skip
    return limits


def load_opcua(s: Section, base: Path, state_dir: Path) -> OpcUaConfig:
    """Read and cross-check the `[opcua]` table; `state_dir` holds the PKI by default."""
    s.reject_unknown(_KEYS)

    def path(key: str) -> Path | None:
        return s.path_value(key, base) if s.has(key) else None

    d = OpcUaConfig()
    security = s.choice(
        "security", SECURITY_CHOICES, d.security,
        fix='"secure" (signed and encrypted endpoints), "secure+none" (also an unencrypted '
        'one) or "none" (lab only: no encryption, and no passwords then)',
    )  # fmt: skip
    config = OpcUaConfig(
        endpoint=_endpoint(s),
        namespace=s.get("namespace", str, d.namespace),
        security=security,
        security_policies=_names(s, "security_policies", SERVER_POLICIES, d.security_policies),
        security_modes=_names(s, "security_modes", SERVER_MODES, d.security_modes),
        allow_anonymous=s.get("allow_anonymous", bool, d.allow_anonymous),
        users=_users(s),
        pki_dir=path("pki_dir") or state_dir / d.pki_dir,
        certificate=path("certificate"),
        private_key=path("private_key"),
        trusted_dir=path("trusted_dir"),
        rejected_dir=path("rejected_dir"),
        limits=_limits(s),
    )  # fmt: skip
    if (config.certificate is None) != (config.private_key is None):
        raise s.error("certificate", "certificate and private_key go together",
                      "give both, or neither to have them generated in pki_dir")  # fmt: skip
    if config.certificate is not None and not config.certificate.is_file():
        raise s.error("certificate", f"{config.certificate} does not exist",
                      "leave certificate out to have one generated on first start")  # fmt: skip
    if config.private_key is not None and not config.private_key.is_file():
        raise s.error("private_key", f"{config.private_key} does not exist")
    if security == "none" and config.users:
        raise s.error(
            "user", 'security = "none" would send these passwords in clear text',
            'use security = "secure" (or "secure+none") with users',
        )  # fmt: skip
    if not config.users and not config.allow_anonymous:
        raise s.error(
            "user", "no [[opcua.user]] is listed and allow_anonymous is false: nobody can log in",
            "add a [[opcua.user]] with a hash from `lineside hash-password`, or set "
            "allow_anonymous = true (anonymous clients may only read)",
        )  # fmt: skip
    return config
