"""The inbox: verify → store → 202, then process in the background.

A POST is answered as soon as the activity is safely in ``inbox_queue``: the
body is size-limited and parsed with depth limits, the HTTP signature checked,
and the signer must be the activity's actor (or the actor must have signed the
body itself, for forwarded activities). A worker then hands each queued activity
to its handler (:mod:`xnode.activitypub.handlers`). An item is ``done`` only
after its handler committed, so a crash means it runs again, never that it is
lost; handlers are written to be idempotent for that reason.

The worker takes the queue a batch at a time and runs different actors'
activities side by side (``PROCESS_CONCURRENCY``), each actor's in arrival
order: a Create and the Delete right behind it must not swap places. One at a
time, an item spent most of its life waiting for database round trips, which
capped processing at about 170 activities a second (issue 4).

Several processes (several ``xnode serve`` on one PostgreSQL database): each batch is
claimed for this process (:func:`xnode.store.inbox_queue.due_activities`, a lease of
``CLAIM_LEASE_S``), so an item is handled by one process; an activity POSTed to two
processes at once is one row, as the second insert finds the first's id
(``ON CONFLICT (activity_id) DO NOTHING``, which on PostgreSQL waits for the first
insert's transaction and then does nothing) and answers 202 as for any replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from federation import json_text
from federation.json_text import JsonTextError
from federation.jsonld import DocumentTooComplex, InvalidJson, parse_json
from federation.keys import KeyAlgorithm, PublicKey
from federation.ldsignatures import LdVerdict, signature_creator, verify_signature
from federation.objects import InvalidActivity, parse_activity
from federation.proofs import ProofVerdict, proof_verification_method, verify_proof
from federation.signatures import signature_key_id
from federation.urls import same_origin
from xnode.accounts.models import Account
from xnode.accounts.relationships import RelationshipService
from xnode.activitypub.appkeys import CALL_SIGNALS, RESOLVER
from xnode.activitypub.handlers import HANDLERS, Context, Deliver, Refused
from xnode.activitypub.resolver import BlockedDomain, ResolveError, Resolver
from xnode.activitypub.serialize import Serializer
from xnode.activitypub.verify import verify_incoming
from xnode.clock import Clock
from xnode.events import EventBus
from xnode.ids import new_id
from xnode.posts.service import PostService
from xnode.settings import Settings
from xnode.store import accounts as account_store
from xnode.store import domain_blocks, inbox_queue
from xnode.store.database import Database
from xnode.web.social import USERNAME
from xnode.web.state import CLOCK, DB, SETTINGS

if TYPE_CHECKING:
    from xnode.activitypub.inbox_process import InboxProcessLink

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_ATTEMPTS = 3
RETRY_DELAY_S = 60.0
IDLE_POLL_S = 30.0
BATCH_SIZE = 200
"""Queue items read per batch."""
PROCESS_CONCURRENCY = 16
"""Actors whose activities are handled at the same time."""
MAX_ERROR_CHARS = 1_000
CLAIM_LEASE_S = 600.0
"""How long a claimed batch is this process's alone unless renewed; a dead process's
items wait this long for another process."""
CLAIM_RENEW_S = CLAIM_LEASE_S / 4
"""While a batch is being handled, its claim is renewed this often (PostgreSQL only).

A batch can outlast any fixed lease: each remote fetch is bounded (10 s), but one
Create may fetch up to five parents with their authors and keys, and one actor's
items of a batch (up to ``BATCH_SIZE``) are handled one after the other, as are
actors beyond ``PROCESS_CONCURRENCY``. A claim that ran out under a batch would let
another process handle the same items again (and an actor's later items before
earlier ones). Renewing keeps the lease short for a process that died, and costs
nothing for the usual batch of a few seconds (the first renewal comes after
``CLAIM_RENEW_S``). Handled items stay claimed until the batch's outcome write, which
is why the whole batch is renewed, not only the items not yet handled."""


class InboxProcessor:
    """Runs queued activities through their handlers."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        clock: Clock,
        events: EventBus,
        resolver: Resolver,
        posts: PostService,
        relationships: RelationshipService,
        serializer: Serializer,
        deliver: Deliver,
        owner: str = "inbox",
    ) -> None:
        """``owner``: this process's id in queue claims (see
        :func:`xnode.activitypub.delivery.process_owner`)."""
        self.db = db
        self.owner = owner
        self.clock = clock
        self.resolver = resolver
        self.context = Context(
            db=db, settings=settings, clock=clock, events=events, resolver=resolver, posts=posts,
            relationships=relationships, serializer=serializer, deliver=deliver,
        )  # fmt: skip
        self.wakeup = asyncio.Event()
        self.on_received: Callable[[], None] | None = None
        """Called for each activity accepted (the load that starts the inbox process)."""
        if resolver.notes.events is None:
            # Posts stored while handling must reach notifications and live updates.
            resolver.notes.events = events

    def wake(self) -> None:
        """Tell the worker there is new work."""
        self.wakeup.set()

    async def handle(self, activity: Mapping[str, Any], actor: Account) -> None:
        """Run one activity from ``actor`` through its handler (unknown types are ignored).

        Raises:
            Refused: the activity is refused for good.
            Exception: anything else, which the queue retries.
        """
        try:
            parsed = parse_activity(activity, require_same_origin=False)
        except InvalidActivity as exc:
            raise Refused(exc.reason) from exc
        if parsed.actor != actor.uri:
            raise Refused(f"activity by {parsed.actor} handled as {actor.uri}")
        handler = HANDLERS.get(parsed.type)
        if handler is None:
            log.info("ignoring %s %s from %s", parsed.type, parsed.id, actor.uri)
            return
        await handler(self.context, parsed, actor)

    async def process_pending(self, limit: int = BATCH_SIZE) -> int:
        """Process up to ``limit`` due items; returns how many were tried.

        Each actor's items run in arrival order, one after the other; up to
        ``PROCESS_CONCURRENCY`` actors are handled at once. The call returns
        only when every item of the batch is finished, so the next batch never
        picks up an item still being handled.
        """
        rows = await inbox_queue.due_activities(
            self.db, now=self.clock.now(), retry_delay_s=RETRY_DELAY_S, limit=limit,
            owner=self.owner, lease_s=CLAIM_LEASE_S,
        )
        by_actor: dict[str, list[Any]] = {}
        for row in rows:
            by_actor.setdefault(row["actor_uri"], []).append(row)
        slots = asyncio.Semaphore(PROCESS_CONCURRENCY)
        done: list[int] = []
        # SQLite: one process handles the queue at a time and the batch is not claimed
        # (due_activities), so there is nothing to renew, and no task per batch.
        renewal = None
        if rows and self.db.dialect == "postgres":
            renewal = asyncio.create_task(
                self._renew_claims([int(row["id"]) for row in rows]), name="inbox-claims"
            )

        async def run(items: list[Any]) -> None:
            async with slots:
                for row in items:
                    if await self._process(row):
                        done.append(row["id"])

        try:
            results = await asyncio.gather(
                *(run(items) for items in by_actor.values()), return_exceptions=True
            )
        finally:
            if renewal is not None:
                renewal.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewal
            # Successes are marked done together, after their handlers committed:
            # one write for the batch instead of one per item (also when shutdown
            # cancels the batch). A crash before this runs them again, which
            # handlers are written to survive.
            await inbox_queue.finish_activities_done(self.db, done, now=self.clock.now())
        for result in results:
            if isinstance(result, BaseException):
                raise result  # e.g. the database failing while recording an outcome
        return len(rows)

    async def _renew_claims(self, row_ids: list[int]) -> None:
        """Every ``CLAIM_RENEW_S`` until cancelled, extend this process's claim on the
        batch (a failed renewal is tried again at the next turn: the lease has room)."""
        while True:
            await asyncio.sleep(CLAIM_RENEW_S)
            try:
                await inbox_queue.renew_claims(
                    self.db, row_ids, owner=self.owner, until=self.clock.now() + CLAIM_LEASE_S
                )
            except Exception:
                log.exception("renewing the claim on %d inbox items failed", len(row_ids))

    async def _process(self, row: Any) -> bool:
        """Handle one queued item; True when it succeeded (the caller marks it done)."""
        now = self.clock.now
        try:
            activity = _stored_activity(row["payload"])
            actor = await self.resolver.actor(row["actor_uri"])
            await self.handle(activity, actor)
        except (Refused, BlockedDomain) as exc:
            # Refused for good: recorded as done (nothing left to do), with the reason.
            reason = exc.reason if isinstance(exc, Refused) else exc.message
            log.info("refused %s: %s", row["activity_id"], reason)
            await inbox_queue.finish_activity(
                self.db, row["id"], state="done", now=now(), error=f"refused: {reason}"
            )
        except Exception as exc:  # CancelledError is not one: shutdown leaves the item pending
            attempts = row["attempts"] + 1
            final = attempts >= MAX_ATTEMPTS
            log.log(
                logging.WARNING if final else logging.INFO,
                "processing %s failed (attempt %d): %r", row["activity_id"], attempts, exc,
                exc_info=final and not isinstance(exc, ResolveError),
            )
            await inbox_queue.finish_activity(
                self.db, row["id"], state="failed" if final else "pending", now=now(),
                error=repr(exc)[:MAX_ERROR_CHARS],
            )
        else:
            return True
        return False


def _stored_activity(payload: str) -> dict[str, Any]:
    """A queued payload as the activity it holds.

    Raises:
        Refused: it can never be parsed (rows queued before the inbox refused
            such bodies at the door): retrying would not change that.
    """
    try:
        # Its size and depth were checked at the door; what is left is whether it is text.
        activity = json_text.loads(payload)
    except (JsonTextError, RecursionError) as exc:
        raise Refused(f"the stored payload is not an activity: {exc!r}") from None
    if not isinstance(activity, dict):
        raise Refused("the stored payload is not a JSON object")
    return activity


INBOX = web.AppKey("ap_inbox", InboxProcessor)
INBOX_LINK: web.AppKey[InboxProcessLink] = web.AppKey("ap_inbox_link")
"""The inbox process's link (:class:`xnode.activitypub.inbox_process.InboxProcessLink`), if any."""


# --- receiving --------------------------------------------------------------------------


async def _read_body(request: web.Request) -> bytes:
    """The raw body, refusing more than ``MAX_BODY_BYTES`` (declared or actual)."""
    declared = request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=declared)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY_BYTES, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


async def _suspended(db: Database, *urls: str | None) -> bool:
    for url in urls:
        if await domain_blocks.url_is_suspended(db, url):
            return True
    return False


_Verify = Callable[[Mapping[str, Any], PublicKey], ProofVerdict | LdVerdict]
"""An embedded signature's check: :func:`verify_proof` or :func:`verify_signature`."""


async def _signed_by_actor(resolver: Resolver, doc: Mapping[str, Any], actor_uri: str) -> bool:
    """Whether the body carries a valid FEP-8b32 proof or RsaSignature2017 by its actor.

    This is how a forwarded activity proves itself: Mastodon forwards replies to
    followers signed (HTTP) by the forwarding server but LD-signed by the author.
    """
    checks: tuple[tuple[str | None, _Verify, KeyAlgorithm], ...] = (
        (proof_verification_method(doc), verify_proof, KeyAlgorithm.ED25519),
        (signature_creator(doc), verify_signature, KeyAlgorithm.RSA),
    )
    for method, verify, algorithm in checks:
        if method is None or not same_origin(method, actor_uri):
            continue
        try:
            owner, key = await resolver.public_key(method)
        except ResolveError as exc:
            log.info("embedded signature key %s unavailable: %s", method, exc)
            continue
        if owner.uri != actor_uri or key.algorithm is not algorithm:
            continue
        # LD signatures need JSON-LD normalisation: CPU work, off the event loop.
        verdict = await asyncio.to_thread(verify, doc, key)
        if verdict.ok:
            return True
    return False


async def receive(request: web.Request) -> web.Response:
    """POST to an inbox: verify, queue, answer 202 (a replayed id is accepted, not re-run)."""
    app = request.app
    db, settings, clock, resolver = app[DB], app[SETTINGS], app[CLOCK], app[RESOLVER]
    username = request.match_info.get("username")
    if username is not None:
        account = await account_store.get_local_account(db, username)
        if account is None or account.is_suspended:
            raise web.HTTPNotFound(text="No such inbox.")
        if account.is_deleted:
            raise web.HTTPGone(text="This account has been deleted.")
    body = await _read_body(request)
    try:
        doc = parse_json(body, max_bytes=MAX_BODY_BYTES, max_depth=MAX_JSON_DEPTH)
        if not isinstance(doc, dict):
            raise InvalidJson("an activity must be a JSON object")
        activity = parse_activity(doc, require_same_origin=False)
    except (InvalidJson, DocumentTooComplex, InvalidActivity) as exc:
        raise web.HTTPBadRequest(text=f"Not an activity: {exc}") from None
    key_id = signature_key_id(request.headers)
    if await _suspended(db, activity.actor, key_id):
        raise web.HTTPForbidden(text="Your server is blocked here.")
    signed = await verify_incoming(request, body, resolver, settings, clock, key_id=key_id)
    if signed.actor.uri != activity.actor and not await _signed_by_actor(
        resolver, doc, activity.actor
    ):
        raise web.HTTPUnauthorized(text="The signer and the actor do not match.")
    if activity.id is not None and not same_origin(activity.id, activity.actor):
        raise web.HTTPForbidden(text="The activity id is not on the actor's host.")
    if resolver.is_local(activity.actor):
        raise web.HTTPForbidden(text="Activities by our own actors are not accepted here.")
    signals = app.get(CALL_SIGNALS)
    # Call signals skip the queue: the callee's tabs are in this process, and a ring
    # cannot wait behind bulk activities (docs/calls-over-activitypub.md).
    if signals is not None and signed.actor.uri == activity.actor and await signals.take(
        signed.actor, doc
    ):
        return web.Response(status=202, text="")
    # Servers that send transient activities without an id get one from the body,
    # so that replays of the same bytes are still recognised.
    activity_id = activity.id or "urn:sha256:" + hashlib.sha256(body).hexdigest()
    fields = {
        "activity_id": activity_id, "actor_uri": activity.actor,
        "signer_key_id": signed.key_id, "payload": body.decode("utf-8"),
    }  # fmt: skip
    link = app.get(INBOX_LINK)
    processor = app.get(INBOX)
    if processor is not None and processor.on_received is not None:
        processor.on_received()
    queued = None if link is None else await link.enqueue(**fields)
    if queued is None:  # no inbox process, or it is down: store the row here
        queued = await inbox_queue.enqueue_activity(db, new_id(), now=clock.now(), **fields)
        if queued:
            if link is not None and link.ready:
                link.wake()  # it handles the queue (this process's worker has stopped)
            elif processor is not None:
                processor.wake()
    if not queued:
        # Not queued: a replay, or a block made through another serving process an
        # instant ago that the check above (a cache) had not heard of yet, while the
        # insert, reading the table, had (inbox_queue.enqueue_activity).
        if await domain_blocks.any_suspended_now(db, activity.actor, signed.key_id):
            raise web.HTTPForbidden(text="Your server is blocked here.")
        log.info("replayed activity %s", activity_id)
    return web.Response(status=202, text="")


# --- the worker -------------------------------------------------------------------------


async def run_forever(app: web.Application, stop: asyncio.Event | None = None) -> None:
    """Process the inbox queue until cancelled: on every wake-up, and every little while.

    With ``stop``: return once it is set, after the batch in progress (the inbox
    process is taking over, and the same item must not be handled twice at once).
    """
    processor = app[INBOX]
    while stop is None or not stop.is_set():
        # Cleared before the scan: an item queued during it sets the event again.
        processor.wakeup.clear()
        try:
            while (stop is None or not stop.is_set()) and await processor.process_pending() > 0:
                await asyncio.sleep(0)  # let requests in between batches
        except Exception:
            log.exception("inbox worker failed")
        if stop is not None and stop.is_set():
            return
        # Not wait_for: in Python 3.11 it drops a cancellation that arrives as
        # the event fires, and shutdown would then wait forever.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(IDLE_POLL_S):
                await processor.wakeup.wait()


async def worker_ctx(app: web.Application) -> AsyncIterator[None]:
    """``cleanup_ctx`` entry running :func:`run_forever` while the app serves."""
    task = asyncio.create_task(run_forever(app), name="inbox-worker")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_routes(app: web.Application) -> None:
    """Register the shared inbox, personal inboxes and the instance actor's inbox.

    Expects ``RESOLVER`` (and, for processing, ``INBOX``) in the app; the CSRF
    middleware exempts these paths (signatures authenticate them).
    """
    app.router.add_post("/inbox", receive, name="shared_inbox")
    app.router.add_post(f"/users/{USERNAME}/inbox", receive, name="inbox")
    app.router.add_post("/actor/inbox", receive)
