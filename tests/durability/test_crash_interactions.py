"""A like, a follow and a DM committed just before a crash still reach the other server.

As in test_crash_posts: node A is a real `xnode serve` process group frozen by a
fault point right after the change commits, killed with SIGKILL and restarted;
node B must then receive the activity, once.
"""

from __future__ import annotations

from crash import crash_after, local_row, received_once, restart
from live_nodes import eventually, remote_post
from served_node import ServedNode

from xnode.posts.service import Draft
from xnode.web.state import DB, POSTS


async def start(served: ServedNode, alice, pause_at: str) -> None:
    served.start(pause_at=pause_at)
    await served.wait_serving()
    await alice.login("alice")


async def test_a_like_committed_right_before_a_crash_reaches_the_author(served, peer, alice):
    await start(served, alice, "after-commit:Liked")
    bob = await peer.user("bob")
    post = await peer[POSTS].publish(bob, Draft(f"@alice@{served.domain} what do you think?"))

    async def stored_on_a() -> object:
        return local_row(served, "SELECT id FROM posts WHERE uri = ?", post.uri)

    (local_id,) = await eventually(stored_on_a, timeout=30)
    await crash_after(served, alice, f"/posts/{local_id}/like", {}, "Liked")
    assert peer.received_ids("Like") == []
    await restart(served)
    await received_once(peer, "Like")

    async def liked() -> bool:
        return (await remote_post(peer, post.uri))["likes_count"] == 1

    await eventually(liked)


async def test_a_follow_committed_right_before_a_crash_reaches_the_followed(served, peer, alice):
    await start(served, alice, "after-commit:FollowChanged")
    carol = await peer.user("carol")
    await crash_after(served, alice, f"/@carol@{peer.domain}/follow", {}, "FollowChanged")
    assert peer.received_ids("Follow") == []
    await restart(served)
    await received_once(peer, "Follow")

    async def followed() -> bool:
        return bool(await peer[DB].fetchvalue(
            "SELECT count(*) FROM follows WHERE target_account_id = ? AND state = 'accepted'",
            (carol.id,),
        ))  # fmt: skip

    await eventually(followed)

    async def accepted_on_a() -> bool:
        row = local_row(served, "SELECT state FROM follows")  # alice's is A's only follow
        return row is not None and row[0] == "accepted"

    await eventually(accepted_on_a, timeout=30)  # B's Accept came back to the restarted A


async def test_a_dm_committed_right_before_a_crash_reaches_the_recipient(served, peer, alice):
    await start(served, alice, "after-commit:PostPublished")
    bob = await peer.user("bob")
    await crash_after(served, alice, "/messages/new",
                      {"to": f"@bob@{peer.domain}", "source": "a secret before the crash"},
                      "PostPublished")  # fmt: skip
    assert peer.received_ids("Create") == []
    await restart(served)
    await received_once(peer, "Create")

    async def delivered() -> object:
        return await peer[DB].fetchone(
            "SELECT p.content_html FROM posts p JOIN conversation_members m"
            " ON m.conversation_id = p.conversation_id WHERE m.account_id = ?",
            (bob.id,),
        )

    row = await eventually(delivered)
    assert "a secret before the crash" in row[0]
