"""A post, an edit and a delete committed just before a crash still reach followers (issue 14).

Node A is a real `xnode serve` process group (serving, inbox and delivery
processes). A fault point freezes it right after the change's transaction
commits, before anything is queued; the test kills the group with SIGKILL,
checks that nothing went out, restarts A and checks that node B's inbox gets
the activity, once.
"""

from __future__ import annotations

from crash import crash_after, local_row, received_once, restart
from live_nodes import eventually, follow_across, remote_post
from served_node import ServedNode


async def followed_by_bob(served: ServedNode, peer, alice, pause_at: str):
    """Start A with ``pause_at`` armed, sign alice in; bob@B follows her; bob's account."""
    served.start(pause_at=pause_at)
    await served.wait_serving()
    await alice.login("alice")
    bob = await peer.user("bob")
    await follow_across(peer, bob, served, "alice")
    return bob


async def test_a_post_committed_right_before_a_crash_reaches_followers(served, peer, alice):
    await followed_by_bob(served, peer, alice, "after-commit:PostPublished")
    await crash_after(served, alice, "/posts", {"source": "said just before the crash"},
                      "PostPublished")  # fmt: skip
    assert peer.received_ids("Create") == []  # nothing had gone out
    await restart(served)
    uri = local_row(served, "SELECT uri FROM posts WHERE source LIKE 'said just%'")[0]
    await received_once(peer, "Create", f"{uri}/activity")
    row = await eventually(lambda: remote_post(peer, uri))
    assert "said just before the crash" in row["content_html"]


async def test_an_edit_committed_right_before_a_crash_reaches_followers(served, peer, alice):
    await followed_by_bob(served, peer, alice, "after-commit:PostEdited")
    assert await alice.submit("/posts", {"source": "first version"}) == 303
    post_id, uri = local_row(served, "SELECT id, uri FROM posts WHERE source = 'first version'")
    await received_once(peer, "Create", f"{uri}/activity")
    await crash_after(served, alice, f"/@alice/{post_id}/edit",
                      {"source": "second version", "summary": ""}, "PostEdited")  # fmt: skip
    assert peer.received_ids("Update") == []
    await restart(served)
    await received_once(peer, "Update")

    async def edited() -> bool:
        row = await remote_post(peer, uri)
        return "second version" in row["content_html"]

    await eventually(edited)


async def test_a_delete_committed_right_before_a_crash_reaches_followers(served, peer, alice):
    await followed_by_bob(served, peer, alice, "after-commit:PostDeleted")
    assert await alice.submit("/posts", {"source": "soon gone"}) == 303
    post_id, uri = local_row(served, "SELECT id, uri FROM posts WHERE source = 'soon gone'")
    await received_once(peer, "Create", f"{uri}/activity")
    await crash_after(served, alice, f"/posts/{post_id}/delete", {}, "PostDeleted")
    assert peer.received_ids("Delete") == []
    await restart(served)
    await received_once(peer, "Delete")

    async def deleted() -> bool:
        row = await remote_post(peer, uri)
        return row["deleted_at"] is not None

    await eventually(deleted)
