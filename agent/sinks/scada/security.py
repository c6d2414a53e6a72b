"""Who may connect and what they may do: certificates, trust store, users, roles, audit.

- The server certificate and key are generated on first start into the PKI directory of the
  state dir (key mode 0600), and renewed when expired or issued for another URI/host.
- A client certificate is accepted only if it is valid now and either lies, byte for byte, in
  the trusted directory or is signed by a CA certificate placed there. Anything else is refused
  with BadCertificateUntrusted and its DER copy is kept in the rejected directory for review
  (an administrator moves it to trusted/ to accept it; no restart needed).
- Users: salted scrypt hashes from the config. asyncua's default user manager admits the name
  `admin` with full rights and any password; it is never used here, and no session ever gets
  asyncua's Admin role. After `lockout_after` bad passwords in a row a name is locked for
  `lockout_s`; password checks are rate limited server-wide (burst 5, then 2 per second) so a
  login flood costs bounded CPU.
- Roles: `viewer` reads, browses and subscribes (and may call ConditionRefresh); `operator` may
  also call Acknowledge. Nobody may Write, AddNodes, DeleteNodes, change references, read
  history or TransferSubscriptions (asyncua would hand over another session's subscription).
- Every login, refusal and acknowledgement is logged to the `lineside.audit` logger.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import hashlib
import logging
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import Buffer, ServiceError
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import PermissionRuleset, User, UserRole
from asyncua.crypto.security_policies import SecurityPolicyFactory, SecurityPolicyNone
from asyncua.ua.ua_binary import struct_from_binary
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.config.opcua import OpcUaConfig, ScadaUser
from agent.config.passwords import verify_password

audit = logging.getLogger("lineside.audit")
log = logging.getLogger(__name__)

# The user whose request is being served: set by the permission check, read by method
# callbacks (asyncua does not pass the session to them). Same task, so same context.
CURRENT_USER: contextvars.ContextVar[SessionUser | None] = contextvars.ContextVar(
    "lineside_scada_user", default=None
)


@dataclass
class SessionUser(User):
    """An asyncua session user carrying our role (asyncua's own role stays User/Anonymous)."""

    scada_role: str = "viewer"


def _ids(*names: str) -> frozenset[ua.NodeId]:
    return frozenset(
        ua.NodeId(getattr(ua.ObjectIds, f"{n}Request_Encoding_DefaultBinary")) for n in names
    )


VIEWER_SERVICES = _ids(
    "CloseSession", "Read", "Browse", "BrowseNext", "TranslateBrowsePathsToNodeIds",
    "RegisterNodes", "UnregisterNodes", "CreateSubscription", "ModifySubscription",
    "DeleteSubscriptions", "SetPublishingMode", "Publish", "Republish",
    "CreateMonitoredItems", "ModifyMonitoredItems", "DeleteMonitoredItems", "SetMonitoringMode",
    "GetEndpoints", "FindServers", "CloseSecureChannel",
)  # fmt: skip
CALL = ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)
REFRESH_METHODS = frozenset(
    ua.NodeId(i) for i in (ua.ObjectIds.ConditionType_ConditionRefresh,
                           ua.ObjectIds.ConditionType_ConditionRefresh2)
)  # fmt: skip
ACK_METHODS = frozenset({ua.NodeId(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge)})
ROLE_METHODS = {"viewer": REFRESH_METHODS, "operator": REFRESH_METHODS | ACK_METHODS}


def _service_name(typeid: ua.NodeId) -> str:
    for name, value in vars(ua.ObjectIds).items():
        if value == typeid.Identifier and name.endswith("_Encoding_DefaultBinary"):
            return name.removesuffix("Request_Encoding_DefaultBinary")
    return str(typeid)


class RolePermissions(PermissionRuleset):
    """Allow only what a role may do; refuse writes and node management to everyone."""

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        """True if `user` may make this request (asyncua answers BadUserAccessDenied if not)."""
        if not isinstance(user, SessionUser):
            return False  # asyncua's own users (Admin, default Anonymous) never get in
        CURRENT_USER.set(user)
        if action_type_id in VIEWER_SERVICES:
            return True
        if action_type_id == CALL:
            params = struct_from_binary(ua.CallParameters, Buffer(bytes(body.copy())))
            allowed = ROLE_METHODS.get(user.scada_role, frozenset())
            refused = [m.MethodId for m in params.MethodsToCall if m.MethodId not in allowed]
            if not refused:
                return True
            audit.warning(
                "refused: user %s (%s) may not call %s",
                user.name or "anonymous", user.scada_role, ", ".join(map(str, refused)),
            )  # fmt: skip
            return False
        audit.warning(
            "refused: user %s (%s) may not %s",
            user.name or "anonymous", user.scada_role, _service_name(action_type_id),
        )  # fmt: skip
        return False


class DiscoveryOnly(PermissionRuleset):
    """For unsecured channels when security None is not enabled: discovery, nothing else."""

    def check_validity(self, user: Any, action_type_id: ua.NodeId, body: Any) -> bool:
        """Always False: GetEndpoints/FindServers never reach here (they need no session)."""
        audit.warning(
            "refused: %s over an unsecured channel (security None is not enabled)",
            _service_name(action_type_id),
        )
        return False


class LinesideServer(Server):
    """asyncua's Server with one gap closed.

    asyncua lets any client open a SecurityPolicy None channel, even when no None endpoint is
    offered (it is needed for GetEndpoints), and a session on that channel is never checked
    against a permission ruleset: it could read and write everything. Here a None channel
    without a configured None endpoint gets the DiscoveryOnly ruleset.
    """

    async def _setup_server_nodes(self) -> None:
        await super()._setup_server_nodes()
        if not any(f.cls is SecurityPolicyNone for f in self._policies):
            self._policies.append(
                SecurityPolicyFactory(  # type: ignore[no-untyped-call]
                    SecurityPolicyNone, ua.MessageSecurityMode.None_,
                    permission_ruleset=DiscoveryOnly(),
                )
            )  # fmt: skip


class ScadaUserManager:
    """Checks user names and passwords from the config; locks out repeated failures."""

    BURST = 5.0
    CHECKS_PER_S = 2.0
    MAX_TRACKED = 1024

    def __init__(self, config: OpcUaConfig) -> None:
        self.users: dict[str, ScadaUser] = {u.name: u for u in config.users}
        self.allow_anonymous = config.allow_anonymous
        self.lockout_after = config.limits.lockout_after
        self.lockout_s = config.limits.lockout_s
        self.failures: OrderedDict[str, tuple[int, float]] = OrderedDict()  # name -> (n, until)
        self.login_failures = 0
        self._tokens = self.BURST
        self._refilled = time.monotonic()

    def _take_token(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.BURST, self._tokens + (now - self._refilled) * self.CHECKS_PER_S)
        self._refilled = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def _fail(self, name: str, why: str) -> None:
        self.login_failures += 1
        count, until = self.failures.pop(name, (0, 0.0))
        count += 1
        if count >= self.lockout_after and until <= time.monotonic():
            until = time.monotonic() + self.lockout_s
            audit.warning(
                "locked out: user %s for %.0f s after %d failures", name, self.lockout_s, count
            )
        self.failures[name] = (count, until)
        while len(self.failures) > self.MAX_TRACKED:
            self.failures.popitem(last=False)
        audit.warning("login refused: user %s: %s", name, why)

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> SessionUser | None:
        """The session user for these credentials, or None (asyncua: BadUserAccessDenied)."""
        if username is None:
            if self.allow_anonymous:
                audit.info("login: anonymous (viewer)")
                return SessionUser(role=UserRole.Anonymous, name=None, scada_role="viewer")
            audit.warning("login refused: anonymous access is off")
            self.login_failures += 1
            return None
        name = username[:64]
        _, until = self.failures.get(name, (0, 0.0))
        if until > time.monotonic():
            self._fail(name, f"locked out for another {until - time.monotonic():.0f} s")
            return None
        user = self.users.get(name)
        if user is None:
            self._fail(name, "no such user")
            return None
        if not self._take_token():
            self.login_failures += 1
            audit.warning("login refused: user %s: too many password checks, try again", name)
            return None
        if not verify_password(password or "", user.password):
            self._fail(name, "wrong password")
            return None
        self.failures.pop(name, None)
        audit.info("login: user %s (%s)", name, user.role)
        return SessionUser(role=UserRole.User, name=name, scada_role=user.role)


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "unnamed"


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except (OSError, ValueError):
        log.warning("ignoring %s in the trusted directory: not a certificate", path)
        return None


class ClientCertificateCheck:
    """asyncua certificate validator: trusted directory, validity dates, rejected copies."""

    def __init__(self, trusted: Path, rejected: Path) -> None:
        self.trusted = trusted
        self.rejected = rejected
        self.refused = 0
        self._stamp: tuple[float, int] | None = None
        self._certs: list[x509.Certificate] = []

    def _trusted_certs(self) -> list[x509.Certificate]:
        # Re-read only when the directory changed: an admin may drop a certificate in at any time.
        files = sorted(
            p for p in self.trusted.glob("*") if p.suffix.lower() in (".der", ".pem", ".crt")
        )
        stamp = (self.trusted.stat().st_mtime, len(files))
        if stamp != self._stamp:
            self._certs = [c for c in map(_load_cert, files) if c is not None]
            self._stamp = stamp
        return self._certs

    def is_trusted(self, cert: x509.Certificate) -> bool:
        """True if the certificate itself, or its issuing CA, is in the trusted directory."""
        der = cert.public_bytes(serialization.Encoding.DER)
        for known in self._trusted_certs():
            if known.public_bytes(serialization.Encoding.DER) == der:
                return True
            if known.subject == cert.issuer and known.subject != cert.subject:
                try:
                    cert.verify_directly_issued_by(known)
                    return True
                except (ValueError, TypeError, InvalidSignature):
                    continue
        return False

    def _refuse(self, cert: x509.Certificate, why: str, code: int) -> None:
        self.refused += 1
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in _common_name(cert))
        target = self.rejected / f"{name}_{_fingerprint(cert)[:16]}.der"
        try:
            self.rejected.mkdir(parents=True, exist_ok=True)
            target.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        except OSError as exc:
            log.warning("cannot keep the rejected certificate in %s: %s", self.rejected, exc)
        audit.warning(
            "certificate refused: CN=%s sha256=%s: %s; kept as %s (move it to %s to trust it)",
            _common_name(cert), _fingerprint(cert), why, target, self.trusted,
        )  # fmt: skip
        raise ServiceError(code)

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        """Raise ServiceError unless the client certificate is valid and trusted."""
        now = dt.datetime.now(dt.UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            self._refuse(
                cert, "outside its validity dates", ua.StatusCodes.BadCertificateTimeInvalid
            )
        if not self.is_trusted(cert):
            self._refuse(
                cert, "not in the trusted directory", ua.StatusCodes.BadCertificateUntrusted
            )
        audit.info("certificate accepted: CN=%s sha256=%s (%s)", _common_name(cert),
                   _fingerprint(cert), app.ApplicationUri)  # fmt: skip


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _cert_fits(cert: x509.Certificate, app_uri: str, host: str) -> bool:
    now = dt.datetime.now(dt.UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc - dt.timedelta(days=1):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    return app_uri in san.get_values_for_type(x509.UniformResourceIdentifier) and host in (
        san.get_values_for_type(x509.DNSName)
    )


def ensure_server_certificate(config: OpcUaConfig, app_uri: str) -> tuple[Path, Path]:
    """The server's certificate and key: configured, or generated into the PKI directory."""
    cert_path, key_path = config.certificate_path, config.private_key_path
    for folder in (config.trusted_path, config.rejected_path):
        folder.mkdir(parents=True, exist_ok=True)
    if config.certificate is not None:
        return cert_path, key_path  # the operator's own certificate: never overwritten
    host = socket.gethostname()
    if key_path.is_file():
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    else:
        key = cert_gen.generate_private_key()
        _write_private(key_path, cert_gen.dump_private_key_as_pem(key))
        log.info("generated the OPC-UA server key %s", key_path)
    if cert_path.is_file():
        existing = _load_cert(cert_path)
        if (
            existing is not None
            and _cert_fits(existing, app_uri, host)
            and (
                existing.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
            )
        ):
            return cert_path, key_path
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"Lineside {host}",
        {"organizationName": "Lineside"},
        [x509.UniformResourceIdentifier(app_uri), x509.DNSName(host), x509.DNSName("localhost")],
        extended=[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        days=365 * 2,
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    log.info(
        "generated the OPC-UA server certificate %s (sha256 %s)", cert_path, _fingerprint(cert)
    )
    return cert_path, key_path
