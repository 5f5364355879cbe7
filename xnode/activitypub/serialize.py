"""Our accounts, posts and interactions as ActivityStreams 2.0 JSON (``to_ap``).

Pure functions: every input is a dataclass or a plain value, every output a
dict ready for ``json.dumps``. Addressing follows Mastodon exactly, because
that is what every peer expects:

| visibility | to | cc |
| --- | --- | --- |
| public | Public | followers + mentioned |
| unlisted | followers | Public + mentioned |
| followers | followers | mentioned |
| direct | mentioned | (nothing) |
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from federation.calls import CALLS_NAMESPACE
from xnode.accounts.models import Account
from xnode.activitypub.urls import PUBLIC, Urls
from xnode.posts.models import Post, PostView

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
DATA_INTEGRITY_CONTEXT = "https://w3id.org/security/data-integrity/v1"

# Extension terms Mastodon-family servers read, declared inline so no extra
# context document has to be fetched by anyone.
EXTENSIONS: dict[str, Any] = {
    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
    "sensitive": "as:sensitive",
    "Hashtag": "as:Hashtag",
    "toot": "http://joinmastodon.org/ns#",
    "discoverable": "toot:discoverable",
    "featured": {"@id": "toot:featured", "@type": "@id"},
    "schema": "http://schema.org#",
    "PropertyValue": "schema:PropertyValue",
    "value": "schema:value",
    "alsoKnownAs": {"@id": "as:alsoKnownAs", "@type": "@id"},
    "movedTo": {"@id": "as:movedTo", "@type": "@id"},
    "conversation": "http://ostatus.org#conversation",
    "ostatus": "http://ostatus.org#",
}
CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT, EXTENSIONS]
# The Ed25519 key (FEP-521a) sits in ``assertionMethod``, a term no context above
# defines at the top level (DID Core's context does; the Multikey context only
# defines what is inside a key). Without it a JSON-LD reader such as Fedify
# drops the property, finds no key and cannot verify our FEP-8b32 proofs.
ACTOR_EXTENSIONS: dict[str, Any] = {
    **EXTENSIONS,
    # Calls (federation/calls.py): callers' servers look here before ringing.
    "xcall": CALLS_NAMESPACE,
    "supportsCalls": "xcall:supportsCalls",
    "assertionMethod": {
        "@id": "https://w3id.org/security#assertionMethod", "@type": "@id", "@container": "@set",
    },
}
ACTOR_CONTEXT: list[Any] = [
    AS_CONTEXT, SECURITY_CONTEXT, MULTIKEY_CONTEXT, DATA_INTEGRITY_CONTEXT, ACTOR_EXTENSIONS,
]


def iso(timestamp: float) -> str:
    """An xsd:dateTime in UTC with a Z, as every peer parses it."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class PublicKeys:
    """The public halves of a local actor's keys."""

    rsa_pem: str
    ed25519_multibase: str | None = None


class Serializer:
    """Builds documents for one node."""

    def __init__(self, urls: Urls, domain: str) -> None:
        self.urls = urls
        self.domain = domain

    # --- who is who ---------------------------------------------------------

    def actor_id(self, account: Account) -> str:
        """The ActivityPub id of any account."""
        if account.is_local:
            return self.urls.actor(account.username)
        return account.uri or ""

    def followers_id(self, account: Account) -> str | None:
        """An account's followers collection (used as an addressee)."""
        if account.is_local:
            return self.urls.followers(account.username)
        return account.followers_url

    def handle(self, account: Account) -> str:
        """``@user@domain`` for any account."""
        return f"@{account.username}@{account.domain or self.domain}"

    # --- actors ---------------------------------------------------------------

    def actor(self, account: Account, keys: PublicKeys) -> dict[str, Any]:
        """A local Person, or Service for an account marked as a bot (or a tombstone-like
        stub for a deleted account)."""
        actor_id = self.urls.actor(account.username)
        doc: dict[str, Any] = {
            "@context": ACTOR_CONTEXT,
            "id": actor_id,
            # Mastodon and its apps show a Service actor as a bot.
            "type": "Service" if account.actor_type == "Service" else "Person",
            "preferredUsername": account.username,
            "name": account.display_name,
            "summary": account.bio_html,
            "url": self.urls.profile_page(account.username),
            "inbox": self.urls.inbox(account.username),
            "outbox": self.urls.outbox(account.username),
            "followers": self.urls.followers(account.username),
            "following": self.urls.following(account.username),
            "featured": self.urls.featured(account.username),
            "endpoints": {"sharedInbox": self.urls.shared_inbox},
            "manuallyApprovesFollowers": account.locked,
            "discoverable": account.discoverable,
            "supportsCalls": True,
            "published": iso(account.created_at),
            "publicKey": {
                "id": self.urls.main_key(account.username),
                "owner": actor_id,
                "publicKeyPem": keys.rsa_pem,
            },
            "attachment": [
                {"type": "PropertyValue", "name": f.name, "value": f.value}
                for f in account.fields
            ],
            "tag": [],
        }
        if keys.ed25519_multibase:
            doc["assertionMethod"] = [
                {
                    "id": self.urls.ed25519_key(account.username),
                    "type": "Multikey",
                    "controller": actor_id,
                    "publicKeyMultibase": keys.ed25519_multibase,
                }
            ]
        if account.avatar_file:
            doc["icon"] = self._image(account.avatar_file)
        if account.header_file:
            doc["image"] = self._image(account.header_file)
        if account.also_known_as:
            doc["alsoKnownAs"] = list(account.also_known_as)
        return doc

    def _image(self, file_name: str) -> dict[str, str]:
        media_type = "image/png" if file_name.endswith(".png") else "image/jpeg"
        return {"type": "Image", "mediaType": media_type,
                "url": f"{self.urls.base}/media/{file_name}"}

    def instance_actor(self, rsa_pem: str) -> dict[str, Any]:
        """The node's Application actor, used to sign fetches."""
        actor_id = self.urls.instance_actor
        return {
            "@context": CONTEXT,
            "id": actor_id,
            "type": "Application",
            "preferredUsername": self.domain,
            "name": self.domain,
            "inbox": f"{actor_id}/inbox",
            "outbox": f"{actor_id}/outbox",
            "endpoints": {"sharedInbox": self.urls.shared_inbox},
            "manuallyApprovesFollowers": True,
            "url": f"{self.urls.base}/",
            "publicKey": {"id": self.urls.instance_key, "owner": actor_id, "publicKeyPem": rsa_pem},
        }

    # --- posts ------------------------------------------------------------------

    def addressing(self, view: PostView) -> tuple[list[str], list[str]]:
        """``to`` and ``cc`` for a post, per its visibility."""
        followers = self.followers_id(view.author)
        mentioned = [self.actor_id(a) for a in view.mentions]
        visibility = view.post.visibility
        followers_list = [followers] if followers else []
        if visibility == "public":
            return [PUBLIC], [*followers_list, *mentioned]
        if visibility == "unlisted":
            return followers_list, [PUBLIC, *mentioned]
        if visibility == "followers":
            return followers_list, mentioned
        return mentioned, []

    def note(self, view: PostView, in_reply_to: str | None = None) -> dict[str, Any]:
        """A post as a Note (or Article), with tags, attachments and addressing."""
        post, author = view.post, view.author
        to, cc = self.addressing(view)
        tags: list[dict[str, Any]] = [
            {"type": "Mention", "href": self.actor_id(a), "name": self.handle(a)}
            for a in view.mentions
        ]
        tags += [
            {"type": "Hashtag", "href": f"{self.urls.base}/tags/{t}", "name": f"#{t}"}
            for t in view.tags
        ]
        doc: dict[str, Any] = {
            "id": post.uri or self.urls.post(author.username, post.id),
            "type": "Article" if post.kind == "article" else "Note",
            "attributedTo": self.actor_id(author),
            "content": post.content_html,
            "summary": post.summary or None,
            "sensitive": post.sensitive,
            "published": iso(post.created_at),
            "url": post.url or self.urls.post_page(author.username, post.id),
            "to": to,
            "cc": cc,
            "inReplyTo": in_reply_to or post.in_reply_to_uri,
            "tag": tags,
            "attachment": [
                {
                    "type": "Document",
                    "mediaType": m.content_type,
                    "url": f"{self.urls.base}{m.url}" if m.url and m.url.startswith("/") else m.url,
                    "name": m.description or None,
                    "width": m.width,
                    "height": m.height,
                }
                for m in view.media
            ],
        }
        if post.kind == "article":
            doc["name"] = post.title
        if post.context:
            doc["context"] = post.context
            doc["conversation"] = post.context
        if post.edited_at:
            doc["updated"] = iso(post.edited_at)
        if post.language:
            doc["contentMap"] = {post.language: post.content_html}
        if post.local and post.visibility in ("public", "unlisted"):
            # Where other servers find the replies they were not sent (Mastodon reads it).
            doc["replies"] = f"{doc['id']}/replies"
        return doc

    def tombstone(self, uri: str, deleted_at: float | None = None) -> dict[str, Any]:
        """What a deleted post's URL answers (with HTTP 410)."""
        doc: dict[str, Any] = {"@context": AS_CONTEXT, "id": uri, "type": "Tombstone"}
        if deleted_at:
            doc["deleted"] = iso(deleted_at)
        return doc

    # --- activities -------------------------------------------------------------

    @staticmethod
    def activity(
        kind: str, activity_id: str, actor: str, obj: Any, *, to: list[str] | None = None,
        cc: list[str] | None = None, published: float | None = None, **extra: Any,
    ) -> dict[str, Any]:
        """A generic activity envelope with our context."""
        doc: dict[str, Any] = {
            "@context": CONTEXT, "id": activity_id, "type": kind, "actor": actor, "object": obj,
        }
        if to is not None:
            doc["to"] = to
        if cc is not None:
            doc["cc"] = cc
        if published is not None:
            doc["published"] = iso(published)
        doc.update(extra)
        return doc

    def create(self, view: PostView, in_reply_to: str | None = None) -> dict[str, Any]:
        """Create{Note} with the same addressing as the note."""
        note = self.note(view, in_reply_to)
        return self.activity(
            "Create", f"{note['id']}/activity", note["attributedTo"], note,
            to=note["to"], cc=note["cc"], published=view.post.created_at,
        )

    def update_note(self, view: PostView, in_reply_to: str | None = None) -> dict[str, Any]:
        """Update{Note} after an edit."""
        note = self.note(view, in_reply_to)
        stamp = int((view.post.edited_at or view.post.created_at) * 1000)
        return self.activity(
            "Update", f"{note['id']}#updates/{stamp}", note["attributedTo"], note,
            to=note["to"], cc=note["cc"],
        )

    def delete_post(
        self, author: Account, post_uri: str, to: list[str], cc: list[str]
    ) -> dict[str, Any]:
        """Delete{Tombstone} to the post's original audience."""
        return self.activity(
            "Delete", f"{post_uri}#delete", self.actor_id(author),
            {"id": post_uri, "type": "Tombstone"}, to=to, cc=cc,
        )

    def announce(self, booster: Account, boost: Post, original_uri: str,
                 original_author: Account) -> dict[str, Any]:
        """Announce of a post (a boost), to Public and the booster's followers."""
        followers = self.followers_id(booster)
        original_actor = self.actor_id(original_author)
        public = boost.visibility == "public"
        to = [PUBLIC] if public else ([followers] if followers else [])
        cc = [c for c in (followers if public else PUBLIC, original_actor) if c]
        return self.activity(
            "Announce", boost.uri or f"{self.urls.post(booster.username, boost.id)}/activity",
            self.actor_id(booster), original_uri, to=to, cc=cc, published=boost.created_at,
        )

    def like(self, liker: Account, like_id: int, object_uri: str,
             object_author: Account) -> dict[str, Any]:
        """Like of a post, sent to its author."""
        return self.activity(
            "Like", self.urls.like(liker.username, like_id), self.actor_id(liker), object_uri,
            to=[self.actor_id(object_author)],
        )

    def emoji_react(
        self, reactor: Account, reaction_uri: str, object_uri: str, emoji: str,
        audience: list[Account],
    ) -> dict[str, Any]:
        """EmojiReact (Pleroma/Akkoma/Misskey/Fedify) of a post, with the emoji as ``content``.

        Mastodon ignores the type; servers that show reactions read ``content``.
        """
        activity = self.activity(
            "EmojiReact", reaction_uri, self.actor_id(reactor), object_uri,
            to=[self.actor_id(a) for a in audience],
        )
        activity["content"] = emoji
        return activity

    def follow(self, follower: Account, follow_id: int, target: Account) -> dict[str, Any]:
        """Follow request."""
        return self.activity(
            "Follow", self.urls.follow(follow_id), self.actor_id(follower), self.actor_id(target),
            to=[self.actor_id(target)],
        )

    def accept_or_reject(
        self, kind: str, target: Account, follow_id: int, follow_uri: str | None,
        follower: Account,
    ) -> dict[str, Any]:
        """Accept or Reject of someone's Follow, embedding the Follow as Mastodon does."""
        follow = {
            "id": follow_uri or self.urls.follow(follow_id),
            "type": "Follow",
            "actor": self.actor_id(follower),
            "object": self.actor_id(target),
        }
        return self.activity(
            kind, self.urls.fragment(target.username, f"{kind.lower()}s/follows", follow_id),
            self.actor_id(target), follow, to=[self.actor_id(follower)],
        )

    def undo(self, actor: Account, inner: dict[str, Any]) -> dict[str, Any]:
        """Undo of an activity we sent, embedding it whole."""
        inner = {k: v for k, v in inner.items() if k != "@context"}
        return self.activity(
            "Undo", f"{inner['id']}/undo" if inner["id"].startswith("http") else inner["id"],
            self.actor_id(actor), inner, to=inner.get("to"),
        )

    def block(self, actor: Account, block_id: int, target: Account) -> dict[str, Any]:
        """Block, sent to the blocked account's server (Mastodon convention)."""
        return self.activity(
            "Block", self.urls.fragment(actor.username, "blocks", block_id),
            self.actor_id(actor), self.actor_id(target), to=[self.actor_id(target)],
        )

    def featured_change(
        self, account: Account, post_uri: str, *, removed: bool, stamp: float
    ) -> dict[str, Any]:
        """Add (a pin) or Remove (an unpin) of a post to the account's featured collection.

        Mastodon's shape: the object is the post's id, the target the collection,
        sent to Public and the followers. The id names the change and its time,
        so pinning the same post again later is a new activity.
        """
        actor_id = self.urls.actor(account.username)
        kind = "Remove" if removed else "Add"
        return self.activity(
            kind, f"{actor_id}#featured/{kind.lower()}/{int(stamp * 1000)}", actor_id, post_uri,
            to=[PUBLIC], cc=[self.urls.followers(account.username)],
            target=self.urls.featured(account.username),
        )

    def update_actor(self, account: Account, keys: PublicKeys) -> dict[str, Any]:
        """Update{Person} after a profile edit, to followers."""
        person = self.actor(account, keys)
        person.pop("@context", None)
        stamp = int(account.updated_at * 1000)
        return self.activity(
            "Update", f"{person['id']}#updates/{stamp}", person["id"], person,
            to=[PUBLIC], cc=[self.urls.followers(account.username)],
        )

    def delete_actor(self, account: Account) -> dict[str, Any]:
        """Delete of the actor itself, after account deletion."""
        actor_id = self.urls.actor(account.username)
        return self.activity(
            "Delete", f"{actor_id}#delete", actor_id, actor_id, to=[PUBLIC],
        )

    @staticmethod
    def ordered_collection(
        collection_id: str, total: int, first: str | None = None,
        items: list[Any] | None = None,
    ) -> dict[str, Any]:
        """An OrderedCollection: with ``first`` (paged) or with inline ``orderedItems``."""
        doc: dict[str, Any] = {
            "@context": AS_CONTEXT, "id": collection_id, "type": "OrderedCollection",
            "totalItems": total,
        }
        if first is not None:
            doc["first"] = first
        if items is not None:
            doc["orderedItems"] = items
        return doc

    @staticmethod
    def collection_page(
        page_id: str, part_of: str, items: list[Any], next_page: str | None,
    ) -> dict[str, Any]:
        """One OrderedCollectionPage."""
        doc: dict[str, Any] = {
            "@context": AS_CONTEXT, "id": page_id, "type": "OrderedCollectionPage",
            "partOf": part_of, "orderedItems": items,
        }
        if next_page:
            doc["next"] = next_page
        return doc
