"""Link preview cards: what a page a post links to says of itself, shown under the post.

``extract`` reads a page's ``<head>`` (OpenGraph, Twitter card, ``<title>`` and
meta description) and finds a post's first link; ``service`` fetches pages in
the background (SSRF-safe, bounded in size and time), caches them by URL and
links posts to them; ``models`` holds the frozen dataclasses the rest of the
node sees. SQL is in :mod:`xnode.store.link_previews`.
"""
