"""Mastodon.py's own streaming client (server-sent events) against the node."""

from __future__ import annotations

import asyncio
import threading

from conftest import create_user

from api.conftest import in_thread, mastodon_for, token_for
from xnode.web.state import RELATIONSHIPS


async def test_mastodon_py_stream_listener_gets_updates_and_notifications(addressed_client):
    from mastodon import StreamListener

    client = addressed_client
    app = client.server.app
    alice, bob = await create_user(app, "alice"), await create_user(app, "bob")
    await app[RELATIONSHIPS].follow(alice.id, bob.id)
    alice_masto = await mastodon_for(client, await token_for(app, alice, "read write"))
    bob_masto = await mastodon_for(client, await token_for(app, bob, "read write"))
    updates: list[str] = []
    notifications: list[str] = []
    got_both = threading.Event()

    class Listener(StreamListener):
        def on_update(self, status):
            updates.append(status.content)
            if updates and notifications:
                got_both.set()

        def on_notification(self, notification):
            notifications.append(notification.type)
            if updates and notifications:
                got_both.set()

    handle = await in_thread(alice_masto.stream_user, Listener(), run_async=True,
                             reconnect_async=False)  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # the stream is open once the handshake is read
        await in_thread(bob_masto.status_post, "hello followers")
        await in_thread(bob_masto.status_post, "@alice are you there?")
        assert await in_thread(got_both.wait, 15), (updates, notifications)
        assert any("hello followers" in content for content in updates)
        assert "mention" in notifications
    finally:
        # Closing waits for its reading thread, which waits for the next bytes: let it
        # finish when the node shuts down at the end of the test.
        threading.Thread(target=handle.close, daemon=True).start()
