"""Who may connect and what they may do: certificates, trust store, users, roles, audit.

- The server certificate and key: pki.py. The door before login (connection slots, the
  handshake deadline, what an unsecured channel may do, per-session caps): door.py, channel.py.
- A client certificate is accepted only if it is valid now and either lies, byte for byte, in
  the trusted directory or is signed by a CA certificate placed there. Anything else is refused
  with BadCertificateUntrusted and its DER copy is kept in the rejected directory for review
  (an administrator moves it to trusted/ to accept it; no restart needed).
- Users: salted scrypt hashes from the config. asyncua's default user manager admits the name
  `admin` with full rights and any password; it is never used here, and no session ever gets
  asyncua's Admin role. Passwords are checked only over a secure channel whose certificate is
  trusted. After `lockout_after` bad passwords in a row a name is locked for `lockout_s` on
  that client certificate only; password checks are rate limited per certificate (burst 5,
  then 2 per second) so a login flood costs bounded CPU.
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
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import Buffer, ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.permission_rules import PermissionRuleset, User, UserRole
from asyncua.crypto.security_policies import (
    SecurityPolicy,
    SecurityPolicyFactory,
    SecurityPolicyNone,
)
from asyncua.ua.ua_binary import struct_from_binary
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from agent.config.opcua import OpcUaConfig, ScadaUser
from agent.config.passwords import verify_password
from agent.sinks.scada.channel import ChannelRules, GuardedInternalServer, GuardedProcessor
from agent.sinks.scada.door import GuardedBinaryServer, Slot
from agent.sinks.scada.pki import fingerprint

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
    """asyncua's Server with its door guarded (door.py, channel.py).

    asyncua lets any client open a SecurityPolicy None channel, even when no None endpoint is
    offered (it is needed for GetEndpoints), and a session on that channel is never checked
    against a permission ruleset: it could read and write everything. Here a None channel
    without a configured None endpoint gets the DiscoveryOnly ruleset, and its activation is
    refused before that (channel.py). Connections go through a `ConnectionBook` under a
    handshake deadline; the UserName token of each endpoint names the endpoint's own policy,
    so a password is encrypted with the server's key, and an unsecured endpoint takes none.
    """

    def __init__(self, user_manager: ScadaUserManager, rules: ChannelRules,
                 deadline_s: float) -> None:  # fmt: skip
        super().__init__(iserver=GuardedInternalServer(user_manager=user_manager))
        self.rules = rules
        self.deadline_s = deadline_s

    async def _setup_server_nodes(self) -> None:
        await super()._setup_server_nodes()
        if not any(f.cls is SecurityPolicyNone for f in self._policies):
            self._policies.append(
                SecurityPolicyFactory(  # type: ignore[no-untyped-call]
                    SecurityPolicyNone, ua.MessageSecurityMode.None_,
                    permission_ruleset=DiscoveryOnly(),
                )
            )  # fmt: skip

    def _set_endpoints(self, policy: type[SecurityPolicy], mode: ua.MessageSecurityMode,
                       level: int) -> None:  # fmt: skip
        super()._set_endpoints(policy, mode, level)
        endpoint = self.iserver.endpoints[-1]
        tokens = []
        for token in endpoint.UserIdentityTokens:
            if token.TokenType == ua.UserTokenType.UserName:
                if mode == ua.MessageSecurityMode.None_:
                    continue  # no password over an unsecured channel
                token.SecurityPolicyUri = policy.URI
            tokens.append(token)
        endpoint.UserIdentityTokens = tokens

    def _make_processor(self, iserver: Any, transport: Any, limits: Any, slot: Slot) -> Any:
        return GuardedProcessor(iserver, transport, limits, slot, self.rules)

    async def start(self) -> None:
        """Listen, as asyncua's `start` does, with the guarded TCP server."""
        if self.iserver.certificate is not None:
            uacrypto.check_certificate(
                self.iserver.certificate, self._application_uri, socket.gethostname()
            )
        await self._setup_server_nodes()
        await self.iserver.start()
        try:
            host, port = self._get_bind_socket_info()
            self.bserver = GuardedBinaryServer(
                self.iserver, host, port, self.limits, book=self.rules.book,
                deadline_s=self.deadline_s, make_processor=self._make_processor,
            )  # fmt: skip
            self.bserver.set_policies(self._policies)
            await self.bserver.start()
        except Exception:
            await self.iserver.stop()
            raise


class ScadaUserManager:
    """Checks user names and passwords from the config; locks out repeated failures.

    A lockout holds one user name on one client certificate (the channel's, which the trusted
    directory accepted): whoever guesses a password from one HMI locks only that HMI out, never
    the same user on another. Password checks are rate limited per certificate too (burst 5,
    then 2 per second), so a login flood costs bounded CPU and slows only its own sender.
    """

    BURST = 5.0
    CHECKS_PER_S = 2.0
    MAX_TRACKED = 1024

    def __init__(self, config: OpcUaConfig) -> None:
        self.users: dict[str, ScadaUser] = {u.name: u for u in config.users}
        self.allow_anonymous = config.allow_anonymous
        self.lockout_after = config.limits.lockout_after
        self.lockout_s = config.limits.lockout_s
        # (name, certificate sha256) -> (failures in a row, locked until)
        self.failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self.login_failures = 0
        # certificate sha256 -> (tokens, last refill): password checks per client certificate
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _take_token(self, thumbprint: str) -> bool:
        now = time.monotonic()
        tokens, refilled = self._buckets.pop(thumbprint, (self.BURST, now))
        tokens = min(self.BURST, tokens + (now - refilled) * self.CHECKS_PER_S)
        taken = tokens >= 1.0
        self._buckets[thumbprint] = (tokens - 1.0 if taken else tokens, now)
        while len(self._buckets) > self.MAX_TRACKED:
            self._buckets.popitem(last=False)
        return taken

    def count_refusal(self) -> None:
        """Count a login refused before it reached this manager (the door's refusals)."""
        self.login_failures += 1

    def _fail(self, key: tuple[str, str], why: str) -> None:
        self.login_failures += 1
        count, until = self.failures.pop(key, (0, 0.0))
        count += 1
        if count >= self.lockout_after and until <= time.monotonic():
            until = time.monotonic() + self.lockout_s
            audit.warning(
                "locked out: user %s on certificate %s for %.0f s after %d failures",
                key[0], key[1][:16], self.lockout_s, count,
            )  # fmt: skip
        self.failures[key] = (count, until)
        while len(self.failures) > self.MAX_TRACKED:
            self.failures.popitem(last=False)
        audit.warning("login refused: user %s: %s", key[0], why)

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
        key = (name, hashlib.sha256(bytes(certificate or b"")).hexdigest())
        _, until = self.failures.get(key, (0, 0.0))
        if until > time.monotonic():
            self._fail(key, f"locked out for another {until - time.monotonic():.0f} s")
            return None
        user = self.users.get(name)
        if user is None:
            self._fail(key, "no such user")
            return None
        if not self._take_token(key[1]):
            self.login_failures += 1
            audit.warning("login refused: user %s: too many password checks, try again", name)
            return None
        if not verify_password(password or "", user.password):
            self._fail(key, "wrong password")
            return None
        self.failures.pop(key, None)
        audit.info("login: user %s (%s)", name, user.role)
        return SessionUser(role=UserRole.User, name=name, scada_role=user.role)


_fingerprint = fingerprint


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    text = str(names[0].value) if names else "unnamed"
    return "".join(c if c.isprintable() else "?" for c in text[:64])  # the client's own words


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
    """Client certificates: trusted directory, validity dates, rejected copies (at most
    `MAX_REJECTED` kept, so a peer presenting new certificates cannot fill the disk)."""

    MAX_REJECTED = 100

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

    def accepts(self, der: bytes) -> bool:
        """True if this DER certificate is valid now and trusted (nothing logged or kept)."""
        try:
            cert = x509.load_der_x509_certificate(der)
        except ValueError:
            return False
        now = dt.datetime.now(dt.UTC)
        valid = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        return valid and self.is_trusted(cert)

    def _keep(self, cert: x509.Certificate) -> str:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in _common_name(cert)[:40])
        target = self.rejected / f"{name}_{_fingerprint(cert)[:16]}.der"
        try:
            self.rejected.mkdir(parents=True, exist_ok=True)
            if not target.exists() and len(list(self.rejected.iterdir())) >= self.MAX_REJECTED:
                return f"not kept: {self.rejected} holds {self.MAX_REJECTED} already"
            target.write_bytes(cert.public_bytes(serialization.Encoding.DER))
        except OSError as exc:
            log.warning("cannot keep the rejected certificate in %s: %s", self.rejected, exc)
            return "not kept"
        return f"kept as {target} (move it to {self.trusted} to trust it)"

    def _refuse(self, cert: x509.Certificate, why: str, code: int) -> None:
        self.refused += 1
        kept = self._keep(cert)
        audit.warning("certificate refused: CN=%s sha256=%s: %s; %s",
                      _common_name(cert), _fingerprint(cert), why, kept)  # fmt: skip
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
                   _fingerprint(cert), str(app.ApplicationUri)[:128])  # fmt: skip
