"""What a channel may ask before and after login: session creation, activation, and caps.

asyncua lets any client open an unencrypted (SecurityPolicy None) channel, which discovery
needs; here such a channel gets GetEndpoints and FindServers, and its ActivateSession is
refused with BadSecurityPolicyRejected before any credential is looked at, unless security
None is configured. Even then a password is never taken over it (BadIdentityTokenRejected).
On a secure channel the certificate that signed the channel is the one checked against the
trusted directory (a CreateSession naming another is refused, one naming none cannot skip the
check), and a password sent in clear text over a Sign-only channel is refused unread.

Each session may hold at most `max_subscriptions_per_session` subscriptions
(BadTooManySubscriptions) and `max_monitored_items_per_session` monitored items: a request
for more creates what fits and answers BadTooManyMonitoredItems for the rest. A session may
only touch its own subscriptions (asyncua would let it delete another session's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.security_policies import SecurityPolicyNone
from asyncua.server.internal_server import InternalServer
from asyncua.server.internal_session import InternalSession
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary
from cryptography import x509

from agent.config.opcua import ScadaLimits
from agent.sinks.scada.door import ConnectionBook, Slot

audit = logging.getLogger("lineside.audit")
CREATE_SESSION = ua.NodeId(ua.ObjectIds.CreateSessionRequest_Encoding_DefaultBinary)
ACTIVATE_SESSION = ua.NodeId(ua.ObjectIds.ActivateSessionRequest_Encoding_DefaultBinary)
TOO_MANY_ITEMS = ua.StatusCodes.BadTooManyMonitoredItems


@dataclass
class ChannelRules:
    """What the door knows of the configuration: None allowed, the trust store, the book."""

    serves_none: bool
    certificates: Any  # security.ClientCertificateCheck
    book: ConnectionBook
    refused: Callable[[], None]  # counts a refused login


def _token_kind(token: Any) -> str:
    if isinstance(token, ua.UserNameIdentityToken):
        return f"user {token.UserName[:64]!r}"
    if isinstance(token, ua.X509IdentityToken):
        return "a certificate token"
    return "anonymous"


class GuardedProcessor(UaProcessor):
    """asyncua's per-connection protocol engine with the checks above in front."""

    def __init__(self, iserver: InternalServer, transport: Any, limits: Any, slot: Slot,
                 rules: ChannelRules) -> None:  # fmt: skip
        super().__init__(iserver, transport, limits)
        self.slot = slot
        self.rules = rules

    @property
    def unsecured(self) -> bool:
        """True on a SecurityPolicy None channel."""
        return isinstance(self._connection.security_policy, SecurityPolicyNone)

    def _channel_certificate(self) -> bytes | None:
        cert = self._connection.security_policy.peer_certificate
        return bytes(cert) if cert else None

    def open_secure_channel(self, algohdr: Any, seqhdr: Any, body: Any) -> None:
        """Open (or renew) the channel; a channel signed by a trusted certificate is trusted."""
        opening = not self._connection.is_open()
        super().open_secure_channel(algohdr, seqhdr, body)  # type: ignore[no-untyped-call]
        der = self._channel_certificate()
        if opening and not self.unsecured and der is not None:
            self.slot.trusted = self.rules.certificates.accepts(der)

    async def _process_message(self, typeid: Any, requesthdr: Any, seqhdr: Any, body: Any) -> Any:
        if typeid == CREATE_SESSION:
            await self._check_create(struct_from_binary(ua.CreateSessionParameters, body.copy()))
        elif typeid == ACTIVATE_SESSION:
            params = struct_from_binary(ua.ActivateSessionParameters, body.copy())
            self._check_activate(params.UserIdentityToken)
        return await super()._process_message(  # type: ignore[no-untyped-call]
            typeid, requesthdr, seqhdr, body
        )

    async def _check_create(self, params: ua.CreateSessionParameters) -> None:
        if self.session is not None:  # one session per connection: the older one is closed
            await self.session.close_session(True)
            self.session = None
        if self.unsecured:
            return  # nothing is proven on this channel; activation decides
        channel = self._channel_certificate()
        assert channel is not None  # a signed channel always carries its certificate
        if params.ClientCertificate and bytes(params.ClientCertificate) != channel:
            audit.warning("refused: CreateSession names another certificate than its channel's")
            raise ServiceError(ua.StatusCodes.BadCertificateInvalid)
        await self.rules.certificates(
            x509.load_der_x509_certificate(channel), params.ClientDescription
        )

    def _check_activate(self, token: Any) -> None:
        if isinstance(token, ua.ExtensionObject) and token.TypeId == ua.NodeId(ua.ObjectIds.Null):
            token = ua.AnonymousIdentityToken()
        who = _token_kind(token)
        if self.unsecured and not self.rules.serves_none:
            self._refuse(who, "over an unsecured channel (security None is not enabled; "
                         "connect with Sign or SignAndEncrypt)",
                         ua.StatusCodes.BadSecurityPolicyRejected)  # fmt: skip
        if self.unsecured and not isinstance(token, ua.AnonymousIdentityToken):
            self._refuse(who, "credentials are taken only over a secure channel",
                         ua.StatusCodes.BadIdentityTokenRejected)  # fmt: skip
        if self.unsecured and not self.rules.book.may_open_untrusted_session():
            self._refuse(who, "the remaining sessions are kept for trusted certificates",
                         ua.StatusCodes.BadTooManySessions)  # fmt: skip
        if not self.unsecured and not self.slot.trusted:
            self._refuse(who, "the channel's certificate is not trusted",
                         ua.StatusCodes.BadCertificateUntrusted)  # fmt: skip
        mode = self._connection.security_policy.Mode
        if (
            isinstance(token, ua.UserNameIdentityToken)
            and mode == ua.MessageSecurityMode.Sign
            and not token.EncryptionAlgorithm
        ):
            self._refuse(who, "the password came in clear text over a Sign-only channel",
                         ua.StatusCodes.BadIdentityTokenRejected)  # fmt: skip

    def _refuse(self, who: str, why: str, code: int) -> None:
        self.rules.refused()
        audit.warning("login refused: %s from %s: %s", who, self.slot.address, why)
        raise ServiceError(code)


class GuardedSession(InternalSession):
    """An asyncua session capped in subscriptions and monitored items, and kept to its own."""

    limits = ScadaLimits()  # the server's, set by GuardedInternalServer

    def _own(self) -> list[Any]:
        return [
            s for s in self.subscription_service.subscriptions.values()
            if s.session_id == self.session_id
        ]  # fmt: skip

    def _check_owner(self, subscription_id: int) -> None:
        sub = self.subscription_service.subscriptions.get(subscription_id)
        if sub is not None and sub.session_id != self.session_id:
            raise ServiceError(ua.StatusCodes.BadSubscriptionIdInvalid)

    async def create_subscription(
        self,
        params: ua.CreateSubscriptionParameters,
        callback: Callable[..., Any],
        request_callback: Callable[..., Any] | None = None,
    ) -> Any:
        """Create one, unless this session holds its share already (BadTooManySubscriptions)."""
        cap = self.limits.max_subscriptions_per_session
        if len(self._own()) >= cap:
            audit.warning("refused: session %s holds %d subscriptions, the most one may",
                          self.name, cap)  # fmt: skip
            raise ServiceError(ua.StatusCodes.BadTooManySubscriptions)
        return await super().create_subscription(params, callback, request_callback)

    async def create_monitored_items(self, params: ua.CreateMonitoredItemsParameters) -> Any:
        """Create what fits under the session's cap; BadTooManyMonitoredItems for the rest."""
        self._check_owner(params.SubscriptionId)
        cap = self.limits.max_monitored_items_per_session
        held = sum(len(s.monitored_item_srv._monitored_items) for s in self._own())
        items = list(params.ItemsToCreate)
        room = max(0, cap - held)
        if len(items) <= room:
            return await super().create_monitored_items(params)
        audit.warning(
            "refused: %d of %d monitored items for session %s (it holds %d, the most is %d)",
            len(items) - room, len(items), self.name, held, cap,
        )  # fmt: skip
        results: list[Any] = []
        if room:
            params.ItemsToCreate = items[:room]
            results = list(await super().create_monitored_items(params))
        refusal = ua.MonitoredItemCreateResult(StatusCode=ua.StatusCode(TOO_MANY_ITEMS))
        return results + [refusal] * (len(items) - room)

    async def modify_monitored_items(self, params: ua.ModifyMonitoredItemsParameters) -> Any:
        """Modify items of this session's own subscription only."""
        self._check_owner(params.SubscriptionId)
        return await super().modify_monitored_items(params)

    async def delete_monitored_items(self, params: ua.DeleteMonitoredItemsParameters) -> Any:
        """Delete items of this session's own subscription only."""
        self._check_owner(params.SubscriptionId)
        return await super().delete_monitored_items(params)

    async def set_monitoring_mode(self, params: ua.SetMonitoringModeParameters) -> Any:
        """Change the mode of this session's own items only."""
        self._check_owner(params.SubscriptionId)
        return await super().set_monitoring_mode(params)

    async def delete_subscriptions(self, ids: list[int]) -> list[ua.StatusCode]:
        """Delete this session's own subscriptions; another's id is BadSubscriptionIdInvalid."""
        subs = self.subscription_service.subscriptions
        mine = [i for i in ids if i in subs and subs[i].session_id == self.session_id]
        done = iter(await super().delete_subscriptions(mine)) if mine else iter(())
        invalid = ua.StatusCode(ua.StatusCodes.BadSubscriptionIdInvalid)
        return [next(done) if i in mine else invalid for i in ids]


class GuardedInternalServer(InternalServer):
    """asyncua's internal server, making `GuardedSession`s under `session_limits`."""

    session_limits = ScadaLimits()

    def create_session(self, name: str, user: Any = None, external: bool = False) -> Any:
        """A session for a client connection (asyncua's own internal session is not one)."""
        session = GuardedSession(self, self.aspace, self.subscription_service, name,
                                 external=external)  # fmt: skip
        session.limits = self.session_limits
        if user is not None:
            session.user = user
        return session
