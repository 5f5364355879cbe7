"""Screenshots of the main screens for docs/user-guide.md (``make screenshots``).

Starts a throwaway node in this process with demo data (people with display names and
Pillow-drawn avatars, posts with hashtags and a picture, a reply thread, a conversation,
notifications), drives Debian's Chromium through Playwright at 1280 and 390 px, and
writes viewport-sized, optimised PNGs into docs/screenshots/. Nothing is downloaded;
the node's data lives in a temporary directory and is thrown away.

    .venv/bin/python tools/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import math
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from PIL import Image, ImageDraw, ImageFont
from playwright.async_api import Browser, Page, async_playwright

from xnode.accounts.models import Account
from xnode.accounts.profile import ProfileEdit
from xnode.clock import FakeClock
from xnode.posts.service import Draft, ImageUpload
from xnode.settings import settings_from_mapping
from xnode.web.app import create_app
from xnode.web.state import ACCOUNTS, DMS, POSTS, PROFILES, RELATIONSHIPS

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
# As in the browser tests: Chromium must not try to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
DOMAIN = "xnode.example"  # shown in the header; the browser talks to 127.0.0.1
PASSWORD = "demo password for screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


# --- pictures ----------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans Bold when installed (Debian's fonts-dejavu-core), else Pillow's own."""
    if FONT.exists():
        return ImageFont.truetype(str(FONT), size)
    return ImageFont.load_default(size=size)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def avatar(initials: str, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> bytes:
    """A 256 px square: a vertical gradient and the person's initials."""
    image = Image.new("RGB", (256, 256))
    draw = ImageDraw.Draw(image)
    for y in range(256):
        mix = y / 255
        draw.line([(0, y), (255, y)], fill=tuple(round(a + (b - a) * mix)
                                                 for a, b in zip(top, bottom, strict=True)))
    draw.text((128, 132), initials, font=_font(104), fill="white", anchor="mm")
    return _png(image)


def landscape(width: int = 1200, height: int = 800) -> bytes:
    """An evening over hills: the picture in a post (and a profile header, cropped)."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        mix = y / height
        draw.line([(0, y), (width, y)],
                  fill=(round(40 + 215 * mix), round(60 + 110 * mix), round(130 + 10 * mix)))
    draw.ellipse([width * 0.62, height * 0.38, width * 0.78, height * 0.62], fill=(255, 214, 140))
    for depth, colour in enumerate([(70, 110, 90), (45, 85, 70), (28, 60, 52)]):
        base = height * (0.62 + 0.1 * depth)
        points = [(0, height)]
        for x in range(0, width + 40, 40):
            wave = math.sin(x / (150 + 60 * depth) + depth * 1.7) * (40 - 8 * depth)
            points.append((x, base + wave))
        points.append((width, height))
        draw.polygon(points, fill=colour)
    return _png(image)


def header(width: int = 1500, height: int = 500) -> bytes:
    """A soft diagonal gradient for a profile header."""
    image = Image.new("RGB", (width, height))
    pixels = image.load()
    assert pixels is not None
    for x in range(0, width, 4):
        for y in range(0, height, 4):
            mix = (x / width + y / height) / 2
            colour = (round(59 + 120 * mix), round(91 + 100 * mix), round(219 - 40 * mix))
            for dx in range(4):
                for dy in range(4):
                    if x + dx < width and y + dy < height:
                        pixels[x + dx, y + dy] = colour
    return _png(image)


# --- the demo node -----------------------------------------------------------------------


@dataclass
class Demo:
    """The running node and who is in it."""

    runner: web.AppRunner
    base: str
    people: dict[str, Account]
    conversation_id: int
    thread_path: str


PEOPLE = [
    # username, display name, bio, avatar colours
    ("alice", "Alice Moreau", "Gardener, cyclist, occasional baker. Lyon.",
     ((236, 110, 90), (190, 60, 90))),
    ("bruno", "Bruno Keller", "Photographs hills at the wrong time of day. #photography",
     ((60, 130, 200), (40, 70, 160))),
    ("chen", "Chen Wei", "Maps, trains and good coffee.", ((60, 170, 140), (30, 110, 100))),
    ("dana", "Dana Okafor", "Community garden on Rue Pasteur. Seeds to share.",
     ((240, 180, 60), (210, 120, 40))),
    ("eli", "Eli Fischer", "Bakes bread on Sundays.", ((150, 110, 210), (100, 60, 170))),
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def start_demo(data_dir: Path) -> Demo:
    """Serve a node with demo data on a free loopback port."""
    port = free_port()
    settings = settings_from_mapping(
        data_dir, {"domain": DOMAIN, "base_url": f"http://{DOMAIN}", "registration": "open"},
        secret_key=secrets.token_bytes(32),
    )
    # The demo happened over the last day: the clock is moved as it is written.
    clock = FakeClock(time.time() - 26 * 3600)
    app = create_app(settings, clock=clock)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    people = await _people(app)
    thread_path, conversation_id = await _activity(app, people, clock.advance)
    clock.advance(time.time() - clock.now())  # now: sessions and times read right
    return Demo(runner, f"http://127.0.0.1:{port}", people, conversation_id, thread_path)


async def _people(app: web.Application) -> dict[str, Account]:
    people: dict[str, Account] = {}
    for name, display, bio, (top, bottom) in PEOPLE:
        user = await app[ACCOUNTS].create_user(name, PASSWORD)
        initials = "".join(part[0] for part in display.split())
        fields = [("Pronouns", "she/her"), ("City", "Lyon")] if name == "alice" else []
        edit = ProfileEdit(display, bio, fields, locked=False, discoverable=True,
                           avatar=avatar(initials, top, bottom),
                           header=header() if name in ("alice", "bruno") else None)  # fmt: skip
        people[name] = await app[PROFILES].edit_profile(user.account.id, edit)
    return people


async def _activity(
    app: web.Application, p: dict[str, Account], advance: Callable[[float], None]
) -> tuple[str, int]:
    """Follows, posts, a conversation, a thread, likes and boosts, over about a day;
    returns the thread's path and the conversation's id."""
    posts, rels, dms = app[POSTS], app[RELATIONSHIPS], app[DMS]
    for follower, followed in [("alice", "bruno"), ("alice", "chen"), ("alice", "dana"),
                               ("bruno", "alice"), ("chen", "alice"), ("dana", "alice"),
                               ("bruno", "dana"), ("chen", "bruno")]:  # fmt: skip
        await rels.follow(p[follower].id, p[followed].id)
    advance(3600)
    await posts.publish(p["chen"], Draft(
        "The new night train to Vienna leaves at 20:14. Sleeper cabins are already half "
        "booked for May. #trains #travel"))  # fmt: skip
    advance(3600)
    pinned = await posts.publish(p["bruno"], Draft(
        "Prints from the autumn series are ready: drop by the studio on Saturday. "
        "#photography"))  # fmt: skip
    await posts.pin(p["bruno"].id, pinned.id)

    advance(4 * 3600)
    hello = await dms.start(p["bruno"], "@alice", "Are you still up for the ride on Sunday?")
    conversation = hello.conversation_id
    assert conversation is not None
    advance(600)
    await dms.send(p["alice"], conversation, "Yes! 9:00 at the bridge? I'll bring the map.")
    advance(300)
    sure = await dms.send(p["bruno"], conversation, "Perfect. Chen might join us too.")
    await dms.react(p["alice"], sure.id, "🎉")
    advance(120)
    await dms.send(p["bruno"], conversation, "Bring a spare tube this time 😄",
                   reply_to_id=hello.id)  # fmt: skip

    advance(12 * 3600)
    question = await posts.publish(p["dana"], Draft(
        "Seed swap at the community garden this Saturday, 10:00 to noon. Bring labelled "
        "envelopes! Who is coming? #gardening #lyon"))  # fmt: skip
    advance(1800)
    first = await posts.publish(p["alice"], Draft(
        "@dana count me in: I have far too many tomato seeds (Coeur de boeuf and a yellow "
        "cherry).", in_reply_to_id=question.id))  # fmt: skip
    advance(900)
    await posts.publish(p["chen"], Draft(
        "@alice @dana I'll bring coffee for the early birds.", in_reply_to_id=first.id))
    advance(600)
    await posts.publish(p["dana"], Draft(
        "@chen you are a hero. Tables go up at 9:30 if anyone wants to help.",
        in_reply_to_id=question.id))  # fmt: skip
    for who in ("alice", "chen", "eli"):
        await posts.like(p[who].id, question.id)
    await posts.boost(p["alice"], question.id)
    advance(3 * 3600)
    photo = await posts.publish(p["bruno"], Draft(
        "Last light over the Monts d'Or tonight. #photography #lyon",
        images=(ImageUpload(landscape(), "Hills in layers of green under an orange evening "
                            "sky, the sun low on the right."),)))  # fmt: skip
    advance(2 * 3600)
    mine = await posts.publish(p["alice"], Draft(
        "First ride of the year along the Saône: 42 km, one flat tyre, zero regrets. "
        "#cycling"))  # fmt: skip
    for who in ("bruno", "chen", "dana"):
        await posts.like(p[who].id, mine.id)
    await posts.boost(p["bruno"], mine.id)
    await posts.like(p["alice"].id, photo.id)
    advance(1800)
    await posts.publish(p["eli"], Draft(
        "@alice the sourdough starter you asked about is ready, come and get some. #baking"))
    await rels.follow(p["eli"].id, p["alice"].id)
    advance(1200)
    await dms.start(p["chen"], "@alice", "Could you send me Dana's seed list?")
    return f"/@dana/{question.id}", conversation


# --- the browser -------------------------------------------------------------------------


async def signed_in(browser: Browser, base: str, viewport: dict[str, int]) -> Page:
    """A page with alice signed in."""
    context = await browser.new_context(viewport=viewport, device_scale_factor=1)
    page = await context.new_page()
    await page.goto(f"{base}/login")
    await page.get_by_label("Username").fill("alice")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_url(f"{base}/")
    return page


async def save(page: Page, out: Path, name: str) -> int:
    """Write the visible part of the page as an optimised PNG; its size in bytes."""
    await page.wait_for_load_state("networkidle")
    # No blinking caret or half-finished transition in a picture.
    shot = await page.screenshot(animations="disabled", caret="hide")
    image = Image.open(io.BytesIO(shot))
    path = out / f"{name}.png"
    image.save(path, format="PNG", optimize=True)
    return path.stat().st_size


async def shoot(demo: Demo, browser: Browser, out: Path) -> dict[str, int]:
    """Every screenshot, by name, with its size."""
    base = demo.base
    sizes: dict[str, int] = {}
    page = await signed_in(browser, base, DESKTOP)
    for name, path in [
        ("home-desktop", "/"),
        ("profile-desktop", "/@bruno"),
        ("thread-desktop", demo.thread_path),
        ("notifications-desktop", "/notifications"),
        ("conversation-desktop", f"/messages/{demo.conversation_id}"),
    ]:
        await page.goto(base + path)
        if name == "home-desktop":  # the compose form fills the first screen: the posts
            await page.evaluate(
                "window.scrollTo(0, document.getElementById('timeline-heading')"
                ".getBoundingClientRect().top + window.scrollY - 24)"
            )
        sizes[name] = await save(page, out, name)
    await page.context.close()

    phone = await signed_in(browser, base, PHONE)
    await phone.goto(base + "/")
    sizes["home-phone"] = await save(phone, out, "home-phone")
    await phone.get_by_role("link", name="New post").click()
    box = phone.locator("#compose-source")
    await box.fill("Sunday ride: 9:00 at the Bonaparte bridge, back for lunch. Who's in? "
                   "#cycling #lyon")  # fmt: skip
    await box.blur()
    sizes["compose-phone"] = await save(phone, out, "compose-phone")
    await phone.goto(f"{base}/messages/{demo.conversation_id}")
    sizes["conversation-phone"] = await save(phone, out, "conversation-phone")
    await phone.context.close()
    return sizes


async def main(out: Path) -> int:
    """Make every screenshot into ``out``; the exit status."""
    if not CHROMIUM.exists():
        print("Chromium is missing: run `make test-deps` (apt package chromium)", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xnode-screenshots-") as tmp:
        demo = await start_demo(Path(tmp) / "node")
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                try:
                    sizes = await shoot(demo, browser, out)
                finally:
                    await browser.close()
        finally:
            await demo.runner.cleanup()
    for name, size in sizes.items():
        print(f"{out / name}.png  {size / 1024:.0f} KiB")
    print(f"total {sum(sizes.values()) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots",
                        help="where the PNGs go (default: docs/screenshots)")  # fmt: skip
    sys.exit(asyncio.run(main(parser.parse_args().out)))
