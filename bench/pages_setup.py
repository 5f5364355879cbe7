"""Data for bench/pages.py, written into a node's data directory by the code being measured.

Run as ``python bench/pages_setup.py DATA_DIR`` with that code first on the path, so that
the database has that code's schema (the benchmark compares two versions).

alice (the reader) follows bob; bob has 40 posts, alice has 40 notifications from
20 other people (a like and a follow each), and bob and alice have a conversation
of 20 messages.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from xnode.accounts.relationships import RelationshipService
from xnode.accounts.service import AccountService
from xnode.clock import SystemClock
from xnode.dms.service import DirectMessages
from xnode.events import EventBus
from xnode.media import MediaStore
from xnode.posts.service import Draft, PostService
from xnode.settings import load_settings
from xnode.store.database import open_database

PASSWORD = "correct horse battery staple"


async def main(data_dir: Path) -> None:
    settings = load_settings(data_dir, environ={})
    clock = SystemClock()
    async with open_database(settings.database_path) as db:
        events = EventBus()
        accounts = AccountService(db, settings, clock, events)
        posts = PostService(db, settings, clock, events, MediaStore(settings.media_dir))
        relationships = RelationshipService(db, clock, events)
        dms = DirectMessages(db, settings, clock, events, posts)
        alice = (await accounts.create_user("alice", PASSWORD)).account
        bob = (await accounts.create_user("bob", PASSWORD)).account
        await relationships.follow(alice.id, bob.id)
        bob_posts = [
            await posts.publish(bob, Draft(f"Post {n} by bob, with a #tag and a link "
                                           f"https://example.org/{n} and some words to read."))
            for n in range(40)
        ]  # fmt: skip
        mine = await posts.publish(alice, Draft("alice says hello to everyone here"))
        for n in range(20):
            fan = (await accounts.create_user(f"fan{n}", PASSWORD)).account
            await posts.like(fan.id, mine.id)
            await relationships.follow(fan.id, alice.id)
        first = await dms.start(bob, "@alice", "hello alice, a message for the benchmark")
        for n in range(19):
            sender = alice if n % 2 else bob
            await dms.send(sender, first.conversation_id, f"message {n} in the conversation")
        print(f"{bob_posts[0].id} {first.conversation_id}")


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
