"""Editing one's own profile: display name, bio, fields, avatar and header.

Everything a submission carries is validated (and every image decoded and
re-encoded) before anything is written, so a bad header next to a good avatar
leaves the profile exactly as it was. Text is checked by pure functions here;
the database write is one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from xnode.accounts.models import Account, ProfileField
from xnode.clock import Clock
from xnode.errors import InvalidInput, NotFound, PayloadTooLarge
from xnode.events import EventBus, ProfileUpdated
from xnode.media import AVATAR, HEADER, ImageSpec, MediaStore, ProcessedImage, process_image
from xnode.store import accounts as account_store
from xnode.store.database import Database
from xnode.text import plain_text_to_html, strip_control_chars

log = logging.getLogger(__name__)

MAX_DISPLAY_NAME = 100
MAX_BIO = 500
MAX_FIELDS = 4
MAX_FIELD_NAME = 255
MAX_FIELD_VALUE = 255

ImageKind = Literal["avatar", "header"]
IMAGE_KINDS: tuple[ImageKind, ...] = ("avatar", "header")
_SPECS: dict[str, ImageSpec] = {"avatar": AVATAR, "header": HEADER}
_LABELS: dict[str, str] = {"avatar": "Avatar", "header": "Header image"}


@dataclass(frozen=True)
class ProfileText:
    """The validated text parts of a profile, ready to store."""

    display_name: str
    bio_source: str
    bio_html: str
    fields: tuple[ProfileField, ...]
    locked: bool
    discoverable: bool
    hide_network: bool = False


@dataclass(frozen=True)
class ProfileEdit:
    """One submission of the profile form: text, new images, images to remove.

    A newly uploaded image wins over ticking "remove" for the same kind.
    """

    display_name: str
    bio: str
    fields: Sequence[tuple[str, str]]
    locked: bool
    discoverable: bool
    avatar: bytes | None = None
    header: bytes | None = None
    remove_avatar: bool = False
    remove_header: bool = False
    hide_network: bool = False


@dataclass(frozen=True)
class ProfilePatch:
    """Part of a profile to change (the client API's ``update_credentials``): what is
    None stays as it is. ``bot`` marks the account as automated (actor type Service)."""

    display_name: str | None = None
    bio: str | None = None
    fields: Sequence[tuple[str, str]] | None = None
    locked: bool | None = None
    discoverable: bool | None = None
    hide_network: bool | None = None
    bot: bool | None = None
    avatar: bytes | None = None
    header: bytes | None = None


def validate_profile_text(
    display_name: str,
    bio: str,
    fields: Sequence[tuple[str, str]],
    locked: bool,
    discoverable: bool,
    hide_network: bool = False,
) -> ProfileText:
    """Check and normalise the text parts of a profile.

    Raises:
        InvalidInput: a value is too long, there are too many fields, or a
            field has a value but no name.
    """
    name = strip_control_chars(display_name).strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise InvalidInput(
            f"The display name is too long (at most {MAX_DISPLAY_NAME} characters).",
            field="display_name",
        )
    bio_source = strip_control_chars(bio, keep_newlines=True).strip()
    if len(bio_source) > MAX_BIO:
        raise InvalidInput(
            f"The bio is too long (at most {MAX_BIO} characters).", field="bio"
        )
    return ProfileText(
        display_name=name,
        bio_source=bio_source,
        bio_html=plain_text_to_html(bio_source),
        fields=validate_fields(fields),
        locked=locked,
        discoverable=discoverable,
        hide_network=hide_network,
    )


def validate_fields(fields: Sequence[tuple[str, str]]) -> tuple[ProfileField, ...]:
    """Check profile fields, dropping rows where both name and value are empty.

    Raises:
        InvalidInput: more than MAX_FIELDS rows, a part too long, or a value
            without a name.
    """
    cleaned: list[ProfileField] = []
    for index, (raw_name, raw_value) in enumerate(fields):
        name = strip_control_chars(raw_name).strip()
        value = strip_control_chars(raw_value).strip()
        if not name and not value:
            continue
        if not name:
            raise InvalidInput(
                f"Field {index + 1} has a value but no label.", field=f"field_name_{index}"
            )
        if len(name) > MAX_FIELD_NAME:
            raise InvalidInput(
                f"The label of field {index + 1} is too long "
                f"(at most {MAX_FIELD_NAME} characters).",
                field=f"field_name_{index}",
            )
        if len(value) > MAX_FIELD_VALUE:
            raise InvalidInput(
                f"The value of field {index + 1} is too long "
                f"(at most {MAX_FIELD_VALUE} characters).",
                field=f"field_value_{index}",
            )
        cleaned.append(ProfileField(name, value))
    if len(cleaned) > MAX_FIELDS:
        raise InvalidInput(f"A profile can have at most {MAX_FIELDS} fields.", field="fields")
    return tuple(cleaned)


class ProfileService:
    """Changes to a local user's own public profile."""

    def __init__(
        self,
        db: Database,
        media: MediaStore,
        clock: Clock,
        max_upload_bytes: int,
        events: EventBus | None = None,
    ) -> None:
        self.events = events or EventBus()
        self.db = db
        self.media = media
        self.clock = clock
        self.max_upload_bytes = max_upload_bytes

    async def edit_profile(self, account_id: int, edit: ProfileEdit) -> Account:
        """Apply a whole profile form: all of it, or (on any error) none of it.

        Raises:
            NotFound: no such live account.
            InvalidInput: bad text or an image that cannot be read.
            PayloadTooLarge: an image over the upload limit.
        """
        await self._require_account(account_id)
        text = validate_profile_text(
            edit.display_name, edit.bio, edit.fields, edit.locked, edit.discoverable,
            edit.hide_network,
        )
        uploads = {"avatar": edit.avatar, "header": edit.header}
        removals = {"avatar": edit.remove_avatar, "header": edit.remove_header}
        changes: dict[str, str | None] = {}
        processed = {
            kind: await self._process(kind, data)
            for kind, data in uploads.items()
            if data is not None
        }
        for kind in IMAGE_KINDS:
            if kind in processed:
                changes[kind] = await self._save_file(processed[kind])
            elif removals[kind]:
                changes[kind] = None
        await self._write(account_id, text, changes)
        return await self._require_account(account_id)

    async def patch_profile(self, account_id: int, patch: ProfilePatch) -> Account:
        """Change some parts of a profile: all of them, or (on any error) none.

        Raises:
            NotFound: no such live account.
            InvalidInput: bad text or an image that cannot be read.
            PayloadTooLarge: an image over the upload limit.
        """
        current = await self._require_account(account_id)
        fields = patch.fields
        if fields is None:
            fields = [(f.name, f.value) for f in current.fields]
        text = validate_profile_text(
            current.display_name if patch.display_name is None else patch.display_name,
            current.bio_source if patch.bio is None else patch.bio,
            fields,
            current.locked if patch.locked is None else patch.locked,
            current.discoverable if patch.discoverable is None else patch.discoverable,
            current.hide_network if patch.hide_network is None else patch.hide_network,
        )
        uploads = {"avatar": patch.avatar, "header": patch.header}
        # Every image is read before anything is written (a bad header keeps the avatar).
        processed = {
            kind: await self._process(kind, data) for kind, data in uploads.items()
            if data is not None
        }  # fmt: skip
        images: dict[str, str | None] = {
            kind: await self._save_file(image) for kind, image in processed.items()
        }
        actor_type = None if patch.bot is None else ("Service" if patch.bot else "Person")
        await self._write(account_id, text, images, actor_type=actor_type)
        return await self._require_account(account_id)

    async def update_profile(
        self,
        account_id: int,
        display_name: str,
        bio: str,
        fields: Sequence[tuple[str, str]],
        locked: bool,
        discoverable: bool,
        hide_network: bool = False,
    ) -> Account:
        """Replace the text parts of a profile.

        Raises:
            NotFound: no such live account.
            InvalidInput: a value breaks the rules (see validate_profile_text).
        """
        await self._require_account(account_id)
        text = validate_profile_text(
            display_name, bio, fields, locked, discoverable, hide_network
        )
        await self._write(account_id, text, {})
        return await self._require_account(account_id)

    async def set_image(self, account_id: int, kind: ImageKind, data: bytes) -> str:
        """Clean and store a new avatar or header; return its media file name.

        Raises:
            NotFound: no such live account.
            InvalidInput: not a readable image, or too many pixels.
            PayloadTooLarge: the upload exceeds the limit.
        """
        await self._require_account(account_id)
        name = await self._save_file(await self._process(kind, data))
        await self._write(account_id, None, {kind: name})
        return name

    async def remove_image(self, account_id: int, kind: ImageKind) -> None:
        """Remove the avatar or header from a profile.

        Raises:
            NotFound: no such live account.
        """
        await self._require_account(account_id)
        await self._write(account_id, None, {_check_kind(kind): None})

    async def _require_account(self, account_id: int) -> Account:
        account = await account_store.get_account(self.db, account_id)
        if account is None or account.is_deleted or not account.is_local:
            raise NotFound("No such account.")
        return account

    async def _process(self, kind: str, data: bytes) -> ProcessedImage:
        """Decode and re-encode an upload, naming the image in any error."""
        spec = _SPECS[_check_kind(kind)]
        try:
            # Decoding and resizing are CPU-bound: keep them off the event loop.
            return await asyncio.to_thread(process_image, data, spec, self.max_upload_bytes)
        except (InvalidInput, PayloadTooLarge) as exc:
            raise type(exc)(f"{_LABELS[kind]}: {exc.message}", field=kind) from None

    async def _save_file(self, image: ProcessedImage) -> str:
        # Files are written before the row that points at them: an error in
        # between leaves an unreferenced file, never a row pointing nowhere.
        return await asyncio.to_thread(self.media.save, image)

    async def _write(
        self, account_id: int, text: ProfileText | None, images: dict[str, str | None],
        *, actor_type: str | None = None,
    ) -> None:
        """Write the changes and tell followers' servers (Update{Person}), in one transaction."""
        now = self.clock.now()
        async with self.events.change(self.db) as change:
            conn = change.conn
            if text is not None:
                await account_store.update_profile(
                    conn,
                    account_id,
                    display_name=text.display_name,
                    bio_source=text.bio_source,
                    bio_html=text.bio_html,
                    fields=text.fields,
                    locked=text.locked,
                    discoverable=text.discoverable,
                    hide_network=text.hide_network,
                    now=now,
                )
            for kind, file_name in images.items():
                await account_store.set_profile_image(conn, account_id, kind, file_name, now)
            if actor_type is not None:
                await account_store.set_local_actor_type(conn, account_id, actor_type, now)
            change.emit(ProfileUpdated(account_id))
        log.info("updated profile of account %d", account_id)


def _check_kind(kind: str) -> str:
    """Refuse image kinds other than avatar and header (a programming error)."""
    if kind not in _SPECS:
        raise ValueError(f"unknown profile image kind {kind!r}")
    return kind

